// Command bitvaultd is the BitVault control plane.
//
// For now it serves only the probes (/healthz, /readyz) and GET /v1/version; the modules
// (identity, files, storage, sync, sharing, ...) are added by later work. It is configured
// through BITVAULT_* environment variables (see internal/platform/config), writes only to
// BITVAULT_DATA_DIR (default /tmp), logs JSON lines to stdout and drains on SIGTERM.
package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/app"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const name = "bitvaultd"

func main() {
	os.Exit(app.Main(spec(), os.Stdout, os.LookupEnv))
}

func spec() app.Spec {
	return app.Spec{
		Name:    name,
		Version: version,
		Commit:  commit,
		Routes: func(mux *http.ServeMux, _ *slog.Logger) {
			mux.Handle("/v1/version", apierror.Methods(http.HandlerFunc(versionHandler), http.MethodGet))
		},
	}
}

// versionInfo is the body of GET /v1/version.
type versionInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

func versionHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(versionInfo{Name: name, Version: version, Commit: commit})
}
