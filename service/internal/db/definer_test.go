package db

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// definers lists every SECURITY DEFINER function of the schema, by signature, with its
// owner. Each is a way for bitvault_app around row-level security, so a new one must be
// added here (TestDefinerCatalog fails otherwise) and meet the same rules.
var definers = map[string]string{
	// 0005_events: the outbox relay.
	"outbox_claim(integer)":           "bitvault_relay",
	"outbox_mark_published(bigint[])": "bitvault_relay",
	"outbox_lag()":                    "bitvault_relay",
	// 0006_workers: the GC sweep and the webhooks dispatcher find tenants.
	"gc_tenants(timestamp with time zone)":          "bitvault_gc",
	"webhook_due_tenants(timestamp with time zone)": "bitvault_gc",
	// 0009_webhook_secrets: the dispatcher finds endpoints to re-encrypt.
	"webhook_secret_stale_tenants(text)": "bitvault_gc",
	// 0010_retention: the retention sweep deletes expired rows.
	"retention_purge_outbox(interval,integer)":             "bitvault_retention",
	"retention_purge_ledger(interval,integer)":             "bitvault_retention",
	"retention_purge_webhook_deliveries(interval,integer)": "bitvault_retention",
	// 0011_search_candidates: index-backed search candidates of the current tenant.
	"search_candidates(tsquery,tsquery,integer)": "bitvault_search",
}

// TestDefinerCatalog checks the SECURITY DEFINER functions: exactly those of definers, each
// owned by its NOLOGIN role (neither superuser nor BYPASSRLS, so row-level security binds it
// through its own policies) that neither bitvault_app nor the schema owner is a member of,
// with a fixed search_path, executable by bitvault_app and not by PUBLIC.
func TestDefinerCatalog(t *testing.T) {
	ctx := context.Background()
	d := pgtest.New(t)
	super := connect(t, d.SuperDSN)
	rows, err := super.Query(ctx, `SELECT p.oid::regprocedure::text, r.rolname, r.rolcanlogin, r.rolsuper, r.rolbypassrls,
	coalesce(p.proconfig, '{}'),
	has_function_privilege($1, p.oid, 'EXECUTE'),
	EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
	pg_has_role($1, p.proowner, 'MEMBER'), pg_has_role($2, p.proowner, 'MEMBER')
FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef ORDER BY 1`, AppRole, pgtest.OwnerRole)
	if err != nil {
		t.Fatal(err)
	}
	type definer struct {
		sig, owner             string
		login, super, bypass   bool
		config                 []string
		appExec, publicExec    bool
		appMember, ownerMember bool
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (definer, error) {
		var f definer
		err := r.Scan(&f.sig, &f.owner, &f.login, &f.super, &f.bypass, &f.config, &f.appExec, &f.publicExec, &f.appMember, &f.ownerMember)
		return f, err
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, f := range found {
		seen[f.sig] = true
		t.Run(f.sig, func(t *testing.T) {
			want, ok := definers[f.sig]
			if !ok {
				t.Fatalf("SECURITY DEFINER function not in definers (definer_test.go): add it, owned by a NOLOGIN role (owner now %s)", f.owner)
			}
			if f.owner != want {
				t.Errorf("owner %s, want %s", f.owner, want)
			}
			if f.login || f.super || f.bypass {
				t.Errorf("owner %s: login=%v superuser=%v bypassrls=%v, want none", f.owner, f.login, f.super, f.bypass)
			}
			if !slices.Contains(f.config, "search_path=public, pg_temp") {
				t.Errorf("proconfig %q, want search_path=public, pg_temp", f.config)
			}
			if !f.appExec || f.publicExec {
				t.Errorf("EXECUTE: %s=%v PUBLIC=%v, want the app role only", AppRole, f.appExec, f.publicExec)
			}
			if f.appMember || f.ownerMember {
				t.Errorf("members of %s: %s=%v %s=%v, want neither (its policies would apply to them)", f.owner, AppRole, f.appMember, pgtest.OwnerRole, f.ownerMember)
			}
		})
	}
	for sig := range definers {
		if !seen[sig] {
			t.Errorf("%s is in definers but not a SECURITY DEFINER function of the schema", sig)
		}
	}
}
