package bases

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/bitvault/bitvault/internal/atomicfile"
)

// npmRegistry is the registry the npm client is configured with
// (npm_config_registry in the environment, else `npm config get registry`,
// which reads the user's and the global .npmrc). Asking npm keeps the project
// free of any registry host of its own.
func npmRegistry(ctx context.Context) (string, error) {
	for _, k := range []string{"npm_config_registry", "NPM_CONFIG_REGISTRY"} {
		if v := os.Getenv(k); v != "" {
			return strings.TrimSuffix(v, "/") + "/", nil
		}
	}
	out, err := exec.CommandContext(ctx, "npm", "config", "get", "registry").Output()
	if err != nil {
		return "", fmt.Errorf("ask npm for its registry (npm config get registry): %w; install Node.js and npm ('apt-get install npm') or set npm_config_registry", err)
	}
	reg := strings.TrimSpace(string(out))
	if !strings.HasPrefix(reg, "http") {
		return "", fmt.Errorf("npm config get registry answered %q; set npm_config_registry to the registry's URL", reg)
	}
	return strings.TrimSuffix(reg, "/") + "/", nil
}

// npmResolve asks the registry for pkg@version's tarball URL and its
// sha512 integrity (dist.integrity).
func npmResolve(ctx context.Context, pkg, version string) (tarball, integrity string, err error) {
	reg, err := npmRegistry(ctx)
	if err != nil {
		return "", "", err
	}
	u := reg + url.PathEscape(pkg) + "/" + url.PathEscape(version)
	body, err := httpGet(ctx, u)
	if err != nil {
		return "", "", fmt.Errorf("npm %s@%s: %w", pkg, version, err)
	}
	var meta struct {
		Version string `json:"version"`
		Dist    struct {
			Tarball   string `json:"tarball"`
			Integrity string `json:"integrity"`
		} `json:"dist"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return "", "", fmt.Errorf("npm %s@%s: %w", pkg, version, err)
	}
	if meta.Version != version || meta.Dist.Tarball == "" || !strings.HasPrefix(meta.Dist.Integrity, "sha512-") {
		return "", "", fmt.Errorf("npm %s@%s: registry answered version %q, tarball %q, integrity %q (need an exact version with a sha512 integrity)", pkg, version, meta.Version, meta.Dist.Tarball, meta.Dist.Integrity)
	}
	return meta.Dist.Tarball, meta.Dist.Integrity, nil
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "bvrelease-bases")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// integrityOf returns the npm-style sha512 integrity string of data.
func integrityOf(data []byte) string {
	s := sha512.Sum512(data)
	return "sha512-" + base64.StdEncoding.EncodeToString(s[:])
}

// npmFetch downloads a tarball, checks its integrity and stores it at dest.
func npmFetch(ctx context.Context, tarballURL, integrity, dest string) error {
	data, err := httpGet(ctx, tarballURL)
	if err != nil {
		return err
	}
	if got := integrityOf(data); got != integrity {
		return fmt.Errorf("%s has integrity %s but the lock says %s: the registry or the lock changed; check, then run 'bvrelease bases --update-lock'", tarballURL, got, integrity)
	}
	return atomicfile.Write(dest, data, 0o644)
}

// npmFiles reads the regular files of an npm tarball, keyed by their path
// below "package/". Modes are normalised to 0755 (any exec bit) or 0644.
type npmFile struct {
	rel  string
	mode int64
	data []byte
}

func readNpmTarball(file string) ([]npmFile, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	tr := tar.NewReader(zr)
	var out []npmFile
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		name, err := cleanPath(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		rel, ok := strings.CutPrefix(name, "package/")
		if !ok {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%s: %s: unsupported entry type %q", file, name, h.Typeflag)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, name, err)
		}
		mode := int64(0o644)
		if h.Mode&0o111 != 0 {
			mode = 0o755
		}
		out = append(out, npmFile{rel: rel, mode: mode, data: data})
	}
	return out, nil
}
