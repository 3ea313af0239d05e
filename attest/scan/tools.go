package scan

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// TrivyVersion is the pinned trivy release; tools/trivy/go.mod pins the same (a test keeps the
// two equal). TrivyDBVersion is the trivy-db module trivy TrivyVersion pins, which
// tools/trivydb links (the schema of the databases it builds).
const (
	TrivyVersion   = "v0.74.0"
	TrivyDBVersion = "v0.0.0-20260813095258-0e0340a01b57"
)

// CosignVersion and KyvernoVersion are the pinned upstream cosign CLI and Kyverno CLI, built by
// scripts/tools.sh from tools/cosign and tools/kyverno (a test keeps them equal to those go.mod
// files). The tests run them to cross-check our signatures, attestations and policies/.
const (
	CosignVersion  = "v2.6.5"
	KyvernoVersion = "v1.19.1"
)

// ToolsDir is where scripts/tools.sh caches the pinned tools:
// $BITVAULT_TOOLS_DIR, else ${XDG_CACHE_HOME:-~/.cache}/bitvault/tools.
func ToolsDir() string {
	if d := os.Getenv("BITVAULT_TOOLS_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "bitvault", "tools")
}

// FindTrivy returns the trivy binary: $BITVAULT_TRIVY, else the tools cache
// (<ToolsDir>/trivy-<TrivyVersion>/trivy), else trivy on PATH.
func FindTrivy() (string, error) {
	return findTool("BITVAULT_TRIVY", "trivy", TrivyVersion, "trivy", "scripts/tools.sh trivy")
}

// FindTrivyDB returns the trivydb binary (tools/trivydb: builds an offline trivy DB from OSV
// records): $BITVAULT_TRIVYDB, else <ToolsDir>/trivydb-<TrivyDBVersion>/trivydb, else PATH.
func FindTrivyDB() (string, error) {
	return findTool("BITVAULT_TRIVYDB", "trivydb", TrivyDBVersion, "trivydb", "scripts/tools.sh trivydb")
}

// FindCosign returns the upstream cosign CLI: $BITVAULT_COSIGN, else
// <ToolsDir>/cosign-<CosignVersion>/cosign, else cosign on PATH.
func FindCosign() (string, error) {
	return findTool("BITVAULT_COSIGN", "cosign", CosignVersion, "cosign", "scripts/tools.sh cosign")
}

// FindKyverno returns the Kyverno CLI: $BITVAULT_KYVERNO, else
// <ToolsDir>/kyverno-<KyvernoVersion>/kyverno, else kyverno on PATH.
func FindKyverno() (string, error) {
	return findTool("BITVAULT_KYVERNO", "kyverno", KyvernoVersion, "kyverno", "scripts/tools.sh kyverno")
}

func findTool(env, name, version, bin, build string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	p := filepath.Join(ToolsDir(), name+"-"+version, bin)
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s %s not found (looked in $%s, %s and PATH); build it with '%s'", bin, version, env, filepath.Dir(p), build)
}

// BuildDB runs trivydb (FindTrivyDB) to build an offline trivy database from the OSV JSON
// records in osvDir into dbDir (trivy.db + metadata.json), usable as Options.DBDir.
func BuildDB(ctx context.Context, osvDir, dbDir string) error {
	bin, err := FindTrivyDB()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, "-osv", osvDir, "-out", dbDir)
	cmd.Dir = os.TempDir() // trivy-db reads ./overrides when present
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -osv %s -out %s: %v\n%s", bin, osvDir, dbDir, err, tail(out.Bytes(), 20))
	}
	return nil
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
