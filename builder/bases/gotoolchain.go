package bases

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strings"
)

const toolchainModule = "golang.org/toolchain"

// toolchainVersion is the module version of the Go release goVersion for
// linux/goarch: "v0.0.1-go1.26.8.linux-amd64".
func toolchainVersion(goVersion, goarch string) string {
	return "v0.0.1-go" + goVersion + ".linux-" + goarch
}

// goModDownload runs `go mod download -json mod@version` outside any module,
// which checks the zip against the checksum database, and returns the zip's
// path in the module cache and its h1 sum.
func goModDownload(ctx context.Context, tmpDir, mod, version string) (zipPath, sum string, err error) {
	dir, err := os.MkdirTemp(tmpDir, "gomod-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(dir)
	cmd := goCommand(ctx, dir, "mod", "download", "-json", mod+"@"+version)
	out, err := cmd.Output()
	var res struct {
		Zip, Sum, Error string
	}
	if jerr := json.Unmarshal(out, &res); jerr == nil && res.Error != "" {
		return "", "", fmt.Errorf("go mod download %s@%s: %s", mod, version, res.Error)
	}
	if err != nil {
		var ee *exec.ExitError
		msg := ""
		if errors.As(err, &ee) {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return "", "", fmt.Errorf("go mod download %s@%s: %w: %s", mod, version, err, msg)
	}
	if res.Zip == "" || res.Sum == "" {
		return "", "", fmt.Errorf("go mod download %s@%s: no zip or sum in %s", mod, version, out)
	}
	return res.Zip, res.Sum, nil
}

// hashZip computes the module h1 hash (golang.org/x/mod/sumdb/dirhash
// Hash1) of a module zip, so a cached zip can be verified against the lock
// without the go command or the network.
func hashZip(file string) (string, error) {
	z, err := zip.OpenReader(file)
	if err != nil {
		return "", err
	}
	defer z.Close()
	files := make([]*zip.File, 0, len(z.File))
	for _, f := range z.File {
		if strings.Contains(f.Name, "\n") {
			return "", fmt.Errorf("%s: file name with newline", file)
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	summary := sha256.New()
	for _, f := range files {
		r, err := f.Open()
		if err != nil {
			return "", err
		}
		h := sha256.New()
		_, err = io.Copy(h, r)
		r.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %s: %w", file, f.Name, err)
		}
		fmt.Fprintf(summary, "%x  %s\n", h.Sum(nil), f.Name)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(summary.Sum(nil)), nil
}

// installToolchain unpacks the toolchain zip (a full GOROOT below the
// "golang.org/toolchain@<version>/" prefix) into t under /usr/local/go.
// Module zips carry no reliable permissions, so bin/* and pkg/tool/*/* are
// made 0755 and everything else keeps the zip's exec bit or gets 0644.
func installToolchain(t *tree, file, version string) error {
	z, err := zip.OpenReader(file)
	if err != nil {
		return err
	}
	defer z.Close()
	prefix := toolchainModule + "@" + version + "/"
	n := 0
	for _, f := range z.File {
		rel, ok := strings.CutPrefix(f.Name, prefix)
		if !ok {
			return fmt.Errorf("%s: entry %q outside %s", file, f.Name, prefix)
		}
		if rel == "" || strings.HasSuffix(rel, "/") {
			continue
		}
		r, err := f.Open()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("%s: %s: %w", file, f.Name, err)
		}
		mode := int64(0o644)
		if f.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if m, _ := path.Match("bin/*", rel); m {
			mode = 0o755
		}
		if m, _ := path.Match("pkg/tool/*/*", rel); m {
			mode = 0o755
		}
		t.file("usr/local/go/"+rel, mode, data)
		n++
	}
	if n == 0 || !t.has("usr/local/go/bin/go") {
		return fmt.Errorf("%s: no bin/go in the toolchain zip", file)
	}
	return nil
}

// goCommand runs the go command found on PATH in module mode outside any
// module, with the user's proxy and checksum database settings.
func goCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GO111MODULE=on", "GOWORK=off", "GOFLAGS=-mod=mod", "GOTOOLCHAIN=local")
	return cmd
}
