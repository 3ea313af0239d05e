// Command trivydb builds an offline trivy vulnerability database (schema 2, the format trivy
// v0.74.0 reads) from OSV JSON records, with trivy-db's own builder — no download.
//
//	trivydb -osv DIR -out DBDIR [-updated-at RFC3339] [-ttl 24h]
//
// DIR holds OSV records (*.json, any depth) in the Go vulnerability database's format, either
// directly or already laid out as DIR/govulndb/data/osv/. They are imported through trivy-db's
// govulndb source, which keeps only the Go standard library and golang.org/x/* modules (other
// modules come from GHSA upstream). A record needs a CVSS_V3 entry in "severity" or trivy reports
// the finding as UNKNOWN; a missing database_specific is filled in with the pkg.go.dev URL.
//
// DBDIR receives trivy.db and metadata.json. trivy reads them from <cache-dir>/db/, so either
// pass -out CACHE/db and run trivy with --cache-dir CACHE --skip-db-update --offline-scan, or
// give DBDIR to attest/scan (Options.DBDir), which accepts both layouts.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aquasecurity/trivy-db/pkg/db"
	"github.com/aquasecurity/trivy-db/pkg/types"
	"github.com/aquasecurity/trivy-db/pkg/vulndb"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc"
	"github.com/aquasecurity/trivy-db/pkg/vulnsrc/govulndb"
	clocktesting "k8s.io/utils/clock/testing"
)

func main() {
	osvDir := flag.String("osv", "", "directory of OSV JSON records (or a root containing govulndb/data/osv/)")
	out := flag.String("out", "", "output directory for trivy.db and metadata.json (replaced)")
	updated := flag.String("updated-at", "", "UpdatedAt recorded in metadata.json, RFC 3339 (default: now)")
	ttl := flag.Duration("ttl", 24*time.Hour, "NextUpdate = UpdatedAt + ttl (trivy ignores it with --skip-db-update)")
	flag.Parse()
	if *osvDir == "" || *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: trivydb -osv DIR -out DBDIR [-updated-at RFC3339] [-ttl 24h]")
		os.Exit(2)
	}
	now := time.Now().UTC()
	if *updated != "" {
		t, err := time.Parse(time.RFC3339, *updated)
		if err != nil {
			fmt.Fprintf(os.Stderr, "trivydb: -updated-at: %v (want RFC 3339, e.g. 2026-01-02T15:04:05Z)\n", err)
			os.Exit(2)
		}
		now = t.UTC()
	}
	n, err := build(*osvDir, *out, now, *ttl)
	if err != nil {
		fmt.Fprintf(os.Stderr, "trivydb: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "trivydb: %d OSV records → %s\n", n, filepath.Join(*out, "trivy.db"))
}

func build(osvDir, out string, now time.Time, ttl time.Duration) (int, error) {
	src, err := os.MkdirTemp("", "trivydb-src-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(src)
	root := osvDir
	if st, err := os.Stat(filepath.Join(osvDir, "govulndb", "data", "osv")); err == nil && st.IsDir() {
		root = filepath.Join(osvDir, "govulndb", "data", "osv")
	}
	dst := filepath.Join(src, "govulndb", "data", "osv")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return 0, err
	}
	n := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b, err = normalize(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		n++
		return os.WriteFile(filepath.Join(dst, fmt.Sprintf("%06d.json", n)), b, 0o644)
	})
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("no OSV records (*.json) under %s", osvDir)
	}

	// A fresh database every time: trivy-db's Build adds to an existing one.
	for _, f := range []string{"trivy.db", "metadata.json"} {
		if err := os.Remove(filepath.Join(out, f)); err != nil && !os.IsNotExist(err) {
			return 0, err
		}
	}
	if err := db.Init(out); err != nil {
		return 0, fmt.Errorf("open %s: %w", db.Path(out), err)
	}
	vdb := vulndb.New(src, out, ttl,
		vulndb.WithVulnSrcs(map[types.SourceID]vulnsrc.VulnSrc{"govulndb": govulndb.NewVulnSrc()}),
		vulndb.WithClock(clocktesting.NewFakeClock(now)))
	if err := vdb.Build([]string{"govulndb"}); err != nil {
		db.Close()
		return 0, fmt.Errorf("build: %w", err)
	}
	return n, db.Close()
}

// normalize checks that b is one OSV record and fills in database_specific, which trivy-db's
// govulndb source requires.
func normalize(b []byte) ([]byte, error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("not an OSV JSON record: %w", err)
	}
	var id string
	if err := json.Unmarshal(rec["id"], &id); err != nil || id == "" {
		return nil, fmt.Errorf(`OSV record without "id"`)
	}
	if _, ok := rec["affected"]; !ok {
		return nil, fmt.Errorf(`%s: no "affected" packages`, id)
	}
	if _, ok := rec["database_specific"]; !ok {
		rec["database_specific"], _ = json.Marshal(map[string]string{"url": "https://pkg.go.dev/vuln/" + id})
	}
	return json.Marshal(rec)
}
