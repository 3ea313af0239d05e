// Package natstest runs an embedded NATS server with JetStream for tests: on a temp StoreDir
// and a fixed free port, so that Restart brings the same server back with its state.
package natstest

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is one embedded NATS server.
type Server struct {
	t    testing.TB
	dir  string
	port int
	srv  *server.Server
}

// New starts a server, shut down when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "bitvault-natstest-*")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &Server{t: t, dir: dir, port: port}
	s.start()
	t.Cleanup(func() {
		s.Shutdown()
		os.RemoveAll(dir)
	})
	return s
}

func (s *Server) start() {
	s.t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: s.port, JetStream: true, StoreDir: s.dir, NoLog: true, NoSigs: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		s.t.Fatalf("natstest: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		s.t.Fatal("natstest: server not ready")
	}
	s.srv = srv
}

// URL is the client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Shutdown stops the server (state stays in the StoreDir).
func (s *Server) Shutdown() {
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// Restart stops the server and starts it again on the same StoreDir and port.
func (s *Server) Restart() {
	s.t.Helper()
	s.Shutdown()
	s.start()
}
