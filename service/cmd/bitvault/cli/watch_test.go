package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"testing"

	"github.com/bitvault/bitvault/service/internal/client"
)

// TestTransient: sync --watch waits out what the server may recover from, and stops on
// anything else.
func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"unreachable", fmt.Errorf("cannot reach vault: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), true},
		{"timed out", fmt.Errorf("cannot reach vault: %w", context.DeadlineExceeded), true},
		{"connection cut", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"unavailable", &client.Error{StatusCode: 503, Code: "unavailable"}, true},
		{"rate limited", &client.Error{StatusCode: 429, Code: "rate_limited"}, true},
		{"refused credentials", &client.Error{StatusCode: 401, Code: "unauthorized"}, false},
		{"forbidden", fmt.Errorf("pull: %w", &client.Error{StatusCode: 403, Code: "forbidden"}), false},
		{"local file", &fs.PathError{Op: "open", Path: "/vault/x", Err: fs.ErrPermission}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transient(tt.err); got != tt.want {
				t.Errorf("transient(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
