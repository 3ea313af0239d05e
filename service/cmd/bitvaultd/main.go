// Command bitvaultd is the BitVault control plane.
//
// Usage:
//
//	bitvaultd [serve]                 serve the API (the default)
//	bitvaultd migrate                 apply the database migrations and exit
//	bitvaultd admin create-tenant     create a tenant and its owner (password on stdin)
//
// It serves the probes (/healthz, /readyz), GET /v1/version, the identity API (/v1/auth/*,
// /v1/api-tokens, /v1/tenants), the files API (/v1/files, /v1/folders, /v1/nodes,
// /v1/trash), sync (/v1/devices, /v1/sync/*), sharing (/v1/nodes/{id}/shares,
// /v1/nodes/{id}/links, /v1/shares, /v1/links/{token}), search (/v1/search) and tenant
// administration (/v1/admin/*: quota, usage, flags, users, audit). It is configured through
// BITVAULT_* environment variables (see internal/platform/config, internal/identity,
// internal/storage, internal/files and internal/sync), writes only to BITVAULT_DATA_DIR
// (default /tmp), logs JSON lines to stdout and drains on SIGTERM: readiness fails at once,
// requests (long polls included) are served as usual for BITVAULT_DRAIN_DELAY, then the
// long polls answer and the server shuts down.
//
// The object store is BITVAULT_STORAGE: s3 (an S3-compatible store, BITVAULT_S3_*), fs
// (files under BITVAULT_STORAGE_DIR, uploaded and downloaded through bitvaultd's own
// /v1/blobs/ with signed URLs based on BITVAULT_PUBLIC_URL: the single-binary dev setup) or
// none (the files API answers 503). It is required with a database.
//
// Events (internal/events, BITVAULT_PROFILE): bitvaultd relays the outbox to the bus and
// wakes the sync long polls of its own clients; the consumers (meter, GC, indexer,
// webhooks) run in bitvaultd in the lite profile, in bitvault-worker in the standard one.
// internal/backend builds the object store and the services on it for both binaries.
//
// The database is PostgreSQL: BITVAULT_DATABASE_URL (the bitvault_app role, required) and,
// optionally, BITVAULT_DATABASE_OWNER_URL (the schema owner), with which serve applies pending
// migrations at start under an advisory lock, so replicas starting together are safe. Without
// it, run 'bitvaultd migrate' (with the owner URL) before starting a new version. Serving
// without a database needs the explicit BITVAULT_DB=none: the probes and /v1/version work,
// /readyz reports the database "not_configured", and the API answers 503.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/bitvault/bitvault/service/internal/admin"
	"github.com/bitvault/bitvault/service/internal/backend"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/events"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/app"
	"github.com/bitvault/bitvault/service/internal/platform/config"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	bvlog "github.com/bitvault/bitvault/service/internal/platform/log"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	"github.com/bitvault/bitvault/service/internal/search"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/storage"
	bvsync "github.com/bitvault/bitvault/service/internal/sync"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

const name = "bitvaultd"

const usage = `usage:
  bitvaultd [serve]               serve the API (default)
  bitvaultd migrate               apply the database migrations (needs BITVAULT_DATABASE_OWNER_URL)
  bitvaultd admin create-tenant --slug SLUG --name NAME --owner-email EMAIL [--owner-name NAME]
                                  create a tenant and its owner; the owner's password is read from stdin
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv))
}

// run dispatches the subcommands; everything but usage errors is logged as JSON to stdout.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch {
	case cmd == "serve" && len(args) == 0:
		return app.Main(spec(), stdout, lookup)
	case cmd == "migrate" && len(args) == 0:
		return migrateCmd(stdout, lookup)
	case cmd == "admin" && len(args) > 0 && args[0] == "create-tenant":
		return createTenantCmd(args[1:], stdin, stdout, stderr, lookup)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return app.ExitOK
	}
	fmt.Fprintf(stderr, "bitvaultd: unknown command %q\n%s", strings.Join(append([]string{cmd}, args...), " "), usage)
	return app.ExitConfig
}

func spec() app.Spec {
	return app.Spec{
		Name:    name,
		Version: version,
		Commit:  commit,
		Routes: func(mux *http.ServeMux, _ *slog.Logger) {
			mux.Handle("/v1/version", apierror.Methods(http.HandlerFunc(versionHandler), http.MethodGet))
		},
		Init: initModules,
	}
}

// initModules connects the database (migrating it first when the owner URL is set) and the
// object store, and mounts the identity and files modules (and, with the filesystem backend,
// its presigned-URL endpoint /v1/blobs/).
func initModules(ctx context.Context, env app.Env) (app.Module, error) {
	dbc, err := config.LoadDatabase(env.Lookup, config.ForServe)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	if !dbc.Enabled {
		env.Logger.Warn("running without a database (BITVAULT_DB=none): the API answers 503")
		env.Checks.Add("database", health.NotConfigured(config.EnvDB+"=none"))
		return app.Module{Routes: func(mux *http.ServeMux) {
			identity.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
			files.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
			bvsync.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
			sharing.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
			search.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
			admin.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
			webhooks.UnavailableRoutes(mux, "no database configured ("+config.EnvDB+"=none)")
		}}, nil
	}
	idcfg, err := identity.LoadConfig(env.Lookup)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	bcfg, err := backend.LoadConfig(env.Lookup, env.Config.DataDir)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	evcfg, err := events.LoadConfig(env.Lookup)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	synccfg, err := bvsync.LoadConfig(env.Lookup)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	env.Logger.Info("database", slog.String("database", dbc.String()), slog.Bool("migrate_at_start", dbc.OwnerURL != ""))
	if dbc.OwnerURL != "" {
		if _, err := db.MigrateURL(ctx, dbc.OwnerURL, dbc.Wait, env.Logger); err != nil {
			return app.Module{}, err
		}
	}
	pool, err := db.Open(ctx, dbc.URL, dbc.Wait)
	if err != nil {
		return app.Module{}, err
	}
	svc, err := identity.New(pool, idcfg)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	env.Checks.Add("database", func(ctx context.Context) error { return pool.Ping(ctx) })
	routes := []func(*http.ServeMux){func(mux *http.ServeMux) { svc.Routes(mux, env.Logger) }}

	be, err := backend.Open(ctx, bcfg, pool, env.Checks, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	store, fsvc, fcfg := be.Store, be.Files, bcfg.Files
	if fsvc == nil {
		routes = append(routes, func(mux *http.ServeMux) {
			files.UnavailableRoutes(mux, "no object store configured ("+storage.EnvStorage+"=none)")
		})
	} else {
		routes = append(routes, func(mux *http.ServeMux) {
			fsvc.Routes(mux, func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler {
				return svc.Authenticated(env.Logger, next)
			})
			if fs, ok := store.(*storage.FS); ok {
				mux.Handle(storage.BlobsPath, fs.Handler())
			}
		})
	}
	// Sync, sharing and search need the database only; without an object store, public
	// links answer 503.
	shsvc, err := sharing.New(pool, svc, store, sharing.Config{DownloadTTL: fcfg.DownloadTTL, Limits: idcfg.Limits}, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	if fsvc != nil {
		// Node-level file operations honour shares (an editor share grants writes there).
		fsvc.SetNodeAuthorizer(shsvc)
	}
	searchsvc, err := search.New(pool, shsvc, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	adminsvc, err := admin.New(pool, svc, admin.Config{DefaultBytesLimit: fcfg.BytesLimit, DefaultFilesLimit: fcfg.FilesLimit}, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	hooks := be.Webhooks
	// The outbox relay and the sync signal and, in the lite profile, the in-process bus and
	// the consumers (in standard, bitvault-worker runs them).
	evcfg.Files, evcfg.Webhooks = fsvc, hooks
	stopEvents, signal, err := events.StartServer(ctx, evcfg, pool, env.Checks, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	// The long polls wake on the signal, and end when the shutdown begins: after the drain
	// delay, during which they go on as usual (load balancers may still route clients here;
	// ending them at its start would only make every client poll again and again).
	synccfg.Notifier, synccfg.Stop = signal, env.ShuttingDown
	syncsvc, err := bvsync.New(pool, synccfg, env.Logger)
	if err != nil {
		stopEvents()
		pool.Close()
		return app.Module{}, err
	}
	routes = append(routes, func(mux *http.ServeMux) {
		auth := func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler {
			return svc.Authenticated(env.Logger, next)
		}
		syncsvc.Routes(mux, auth)
		shsvc.Routes(mux, auth)
		searchsvc.Routes(mux, auth)
		adminsvc.Routes(mux, auth)
		hooks.Routes(mux, auth)
	})
	return app.Module{
		Routes: func(mux *http.ServeMux) {
			for _, r := range routes {
				r(mux)
			}
		},
		Close: func() {
			stopEvents()
			pool.Close()
		},
	}, nil
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

// commandLogger is the JSON logger of the one-shot commands.
func commandLogger(stdout io.Writer, cmd string) *slog.Logger {
	return bvlog.New(stdout, slog.LevelInfo).With(slog.String("service", name), slog.String("command", cmd))
}

// migrateCmd applies the embedded migrations with BITVAULT_DATABASE_OWNER_URL.
func migrateCmd(stdout io.Writer, lookup func(string) (string, bool)) int {
	logger := commandLogger(stdout, "migrate")
	dbc, err := config.LoadDatabase(lookup, config.ForMigrate)
	if err != nil {
		logger.Error("invalid configuration", slog.String("error", err.Error()))
		return app.ExitConfig
	}
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	applied, err := db.MigrateURL(ctx, dbc.OwnerURL, dbc.Wait, logger)
	if err != nil {
		logger.Error("migrate failed", slog.String("error", err.Error()))
		return app.ExitError
	}
	ms, _ := db.Migrations()
	logger.Info("schema up to date", slog.Int("applied", len(applied)), slog.String("version", ms[len(ms)-1].Name))
	return app.ExitOK
}

// createTenantCmd creates a tenant and its owner with the server's configuration, no
// bootstrap token needed (whoever can run it has the database credentials anyway).
func createTenantCmd(args []string, stdin io.Reader, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	fs := flag.NewFlagSet("bitvaultd admin create-tenant", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var in identity.NewTenant
	fs.StringVar(&in.Slug, "slug", "", "tenant slug, used at login (required)")
	fs.StringVar(&in.Name, "name", "", "tenant display name (required)")
	fs.StringVar(&in.OwnerEmail, "owner-email", "", "email of the owner user (required)")
	fs.StringVar(&in.OwnerName, "owner-name", "", "display name of the owner user")
	if err := fs.Parse(args); err != nil {
		return app.ExitConfig
	}
	if fs.NArg() > 0 || in.Slug == "" || in.Name == "" || in.OwnerEmail == "" {
		fmt.Fprint(stderr, "bitvaultd admin create-tenant: --slug, --name and --owner-email are required; the password is read from stdin\n")
		return app.ExitConfig
	}
	logger := commandLogger(stdout, "admin create-tenant")
	password, err := bufio.NewReader(io.LimitReader(stdin, identity.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		logger.Error("read password from stdin", slog.String("error", err.Error()))
		return app.ExitError
	}
	in.OwnerPassword = strings.TrimRight(password, "\r\n")

	dbc, err := config.LoadDatabase(lookup, config.ForServe)
	if err == nil && !dbc.Enabled {
		err = errors.New(config.EnvDB + "=none: there is no database to create a tenant in")
	}
	if err != nil {
		logger.Error("invalid configuration", slog.String("error", err.Error()))
		return app.ExitConfig
	}
	idcfg, err := identity.LoadConfig(lookup)
	if err != nil {
		logger.Error("invalid configuration", slog.String("error", err.Error()))
		return app.ExitConfig
	}
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	pool, err := db.Open(ctx, dbc.URL, dbc.Wait)
	if err != nil {
		logger.Error("database", slog.String("error", err.Error()))
		return app.ExitError
	}
	defer pool.Close()
	svc, err := identity.New(pool, idcfg)
	if err != nil {
		logger.Error("identity", slog.String("error", err.Error()))
		return app.ExitError
	}
	t, u, err := svc.CreateTenant(ctx, in)
	if err != nil {
		logger.Error("create tenant failed", slog.String("error", err.Error()))
		return app.ExitError
	}
	logger.Info("tenant created", slog.String("tenant_id", t.ID), slog.String("slug", t.Slug), slog.String("owner_id", u.ID))
	return app.ExitOK
}
