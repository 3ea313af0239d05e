package policy_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/policy"
)

var update = flag.Bool("update", false, "rewrite the committed policies (policies/) from bvrelease.yaml")

// repoRoot is the repository root: this package is release/policy.
const repoRoot = "../.."

// TestGolden generates the policies from the repository's bvrelease.yaml and compares them with
// the committed ones in its policy.output (policies/): a change to the generator or to the
// configuration must come with the regenerated files (go test ./release/policy -update, or
// bvrelease policy), and `bvrelease policy --check` holds in CI.
func TestGolden(t *testing.T) {
	cfg, err := config.Load(filepath.Join(repoRoot, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	files, err := policy.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := policy.Dir(cfg)
	if *update {
		if err := policy.Write(dir, files); err != nil {
			t.Fatal(err)
		}
	}
	diff, err := policy.Check(dir, cfg.Policy.Output, files)
	if err != nil {
		t.Fatal(err)
	}
	if diff != "" {
		t.Fatalf("the committed policies differ from what %s generates (go test ./release/policy -update rewrites them):\n%s", config.FileName, diff)
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f.Path))); err != nil {
			t.Fatal(err)
		}
	}
}
