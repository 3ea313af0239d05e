// Package policystage is the pipeline stage that generates the admission policies for the
// release (release/policy, from bvrelease.yaml) into dist/policies, the set that matches
// exactly what this release produced, and compares them with the committed policies/: a real
// release with stale committed policies fails (clusters would enforce something else than
// what was released); a dry-run says so and goes on.
package policystage

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/policy"
)

// Stage generates policies.
type Stage struct{}

func (Stage) Name() string { return "policy" }

// Dir is where the stage writes the generated policies.
func Dir(r *release.Release) string { return filepath.Join(r.Dist, "policies") }

func (Stage) Run(ctx context.Context, r *release.Release) error {
	files, err := policy.Generate(r.Config)
	if err != nil {
		return err
	}
	if err := policy.Write(Dir(r), files); err != nil {
		return fmt.Errorf("writing %s: %w", Dir(r), err)
	}
	diff, err := policy.Check(policy.Dir(r.Config), r.Config.Policy.Output, files)
	if err != nil {
		return err
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Path
	}
	r.Record.Policies = release.PoliciesRecord{Dir: "policies", Files: names, Current: diff == ""}
	if diff != "" {
		msg := fmt.Sprintf("the committed %s/ differs from what bvrelease.yaml generates; run 'bvrelease policy' and commit:\n%s", r.Config.Policy.Output, strings.TrimSpace(diff))
		if !r.DryRun {
			return fmt.Errorf("%s", msg)
		}
		r.Logf("policy: WARNING: %s", msg)
	}
	r.Logf("policy: %d admission policies generated into %s (committed %s/ %s)", len(files), Dir(r), r.Config.Policy.Output, map[bool]string{true: "up to date", false: "STALE"}[diff == ""])
	return nil
}
