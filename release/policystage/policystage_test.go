package policystage_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/policystage"
)

func TestStage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*config.Config)
		dryRun  bool
		wantErr string
		current bool
	}{
		{"committed policies current", nil, false, "", true},
		{"stale, real release", func(c *config.Config) { c.Signing.IdentityRegexp = `^https://github\.com/bitvault/bitvault/\.github/workflows/other\.yml@refs/tags/v.*$` }, false, "run 'bvrelease policy'", false},
		{"stale, dry-run goes on", func(c *config.Config) { c.Signing.IdentityRegexp = `^https://github\.com/bitvault/bitvault/\.github/workflows/other\.yml@refs/tags/v.*$` }, true, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load("../../bvrelease.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if tc.edit != nil {
				tc.edit(cfg)
			}
			var log strings.Builder
			r := release.New(cfg, t.TempDir(), release.Options{DryRun: tc.dryRun, Log: &log})
			err = policystage.Stage{}.Run(context.Background(), r)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if r.Record.Policies.Current != tc.current || len(r.Record.Policies.Files) < 3 {
				t.Errorf("record %+v, want current=%v and the generated files", r.Record.Policies, tc.current)
			}
			for _, f := range r.Record.Policies.Files {
				if _, err := os.Stat(filepath.Join(policystage.Dir(r), f)); err != nil {
					t.Error(err)
				}
			}
			if !tc.current && !strings.Contains(log.String(), "STALE") {
				t.Errorf("log does not say STALE:\n%s", log.String())
			}
		})
	}
}
