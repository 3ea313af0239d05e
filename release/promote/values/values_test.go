package values

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func digest(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

// TestSetGolden rewrites fixtures (deploy/gitops's dev values; every quoting
// style, trailing and head comments, flow mappings, empty/null/tagged/anchored
// values, a dotted key, non-ASCII text before a value) and compares with
// testdata/golden; the byte diff must touch exactly the lines of the changed
// values, and within them only the value's bytes.
func TestSetGolden(t *testing.T) {
	for _, tc := range []struct {
		file    string
		updates []Update
		lines   []int // the lines that must change, and only they
	}{
		{"deploy-dev.yaml", []Update{
			{"bitvaultd.image.digest", digest('a')},
			{"bitvault-worker.image.digest", digest('b')},
			{"bitvault-web.image.digest", digest('c')},
		}, []int{10, 16, 22}},
		{"styles.yaml", []Update{
			{"plain.image.digest", digest('a')},
			{"double.image.digest", digest('b')},
			{"single.image.digest", digest('c')},
			{"empty.image.digest", digest('d')},
			{"nulled.image.digest", digest('e')},
			{"tagged.image.digest", digest('f')},
			{"anchored.image.digest", digest('a')},
			{"web.v2.image.digest", digest('b')},
			{"unchanged.image.digest", digest('1')},
		}, []int{7, 13, 17, 21, 26, 30, 34, 40}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			out, changes, err := Set(tc.file, in, tc.updates)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", tc.file)
			if *update {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("differs from %s (go test -update rewrites it):\n%s", golden, out)
			}
			var got []int
			for _, c := range changes {
				got = append(got, c.Line)
				if c.Old == c.New {
					t.Errorf("change %+v changes nothing", c)
				}
			}
			if !equalInts(got, tc.lines) {
				t.Errorf("changed lines %v, want %v", got, tc.lines)
			}
			assertOnlyValues(t, in, out, changes)
			// Idempotent: applying the same updates again changes nothing.
			again, changes2, err := Set(tc.file, out, tc.updates)
			if err != nil || len(changes2) != 0 || !bytes.Equal(again, out) {
				t.Errorf("second Set: %d changes, err %v", len(changes2), err)
			}
			for _, u := range tc.updates {
				if v, err := Get(tc.file, out, u.Path); err != nil || v != u.Value {
					t.Errorf("Get(%s) = %q, %v; want %q", u.Path, v, err, u.Value)
				}
			}
		})
	}
}

// assertOnlyValues: same number of lines; every differing line is a changed
// value's line, and on it the text before the old value and after it (the
// trailing comment) is untouched.
func assertOnlyValues(t *testing.T, in, out []byte, changes []Change) {
	t.Helper()
	il, ol := strings.Split(string(in), "\n"), strings.Split(string(out), "\n")
	if len(il) != len(ol) {
		t.Fatalf("%d lines became %d", len(il), len(ol))
	}
	byLine := map[int]Change{}
	for _, c := range changes {
		byLine[c.Line] = c
	}
	for i := range il {
		if il[i] == ol[i] {
			continue
		}
		c, ok := byLine[i+1]
		if !ok {
			t.Errorf("line %d changed but holds no changed value:\n- %s\n+ %s", i+1, il[i], ol[i])
			continue
		}
		// Common prefix and suffix: what is left must be the old and new value (with quotes).
		p := 0
		for p < len(il[i]) && p < len(ol[i]) && il[i][p] == ol[i][p] {
			p++
		}
		s := 0
		for s < len(il[i])-p && s < len(ol[i])-p && il[i][len(il[i])-1-s] == ol[i][len(ol[i])-1-s] {
			s++
		}
		oldMid, newMid := il[i][p:len(il[i])-s], ol[i][p:len(ol[i])-s]
		if !strings.Contains(c.New, strings.Trim(newMid, ` "'`)) || (c.Old != "" && !strings.Contains(c.Old, strings.Trim(oldMid, ` "'`))) {
			t.Errorf("line %d: %q became %q, want only %q → %q", i+1, oldMid, newMid, c.Old, c.New)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSetCRLF keeps Windows line endings.
func TestSetCRLF(t *testing.T) {
	in := "a:\r\n  image:\r\n    digest: sha256:0 # c\r\n  x: 1\r\n"
	out, changes, err := Set("v.yaml", []byte(in), []Update{{"a.image.digest", digest('a')}})
	if err != nil {
		t.Fatal(err)
	}
	want := "a:\r\n  image:\r\n    digest: " + digest('a') + " # c\r\n  x: 1\r\n"
	if string(out) != want || len(changes) != 1 || changes[0].Old != "sha256:0" {
		t.Fatalf("got %q (%+v)", out, changes)
	}
}

// TestSetErrors: every refusal names the file, the key path and, for a
// missing key, the nearest existing one.
func TestSetErrors(t *testing.T) {
	dev, err := os.ReadFile(filepath.Join("testdata", "deploy-dev.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data string
		path string
		want []string
	}{
		{"typo in the last key", string(dev), "bitvaultd.image.digets", []string{"deploy-dev.yaml:8: key path bitvaultd.image.digets", `bitvaultd.image has no key "digets"`, "nearest existing key: bitvaultd.image.digest (line 10)"}},
		{"missing artifact", string(dev), "bitvault-api.image.digest", []string{`the top level has no key "bitvault-api"`, "nearest existing key: bitvault-web (line 19)"}},
		{"missing branch", string(dev), "bitvaultd.container.digest", []string{`bitvaultd has no key "container"`, "nearest existing key: bitvaultd (line 7; its keys: image, replicas)"}},
		{"scalar on the way", string(dev), "global.environment.digest", []string{"global.environment is a scalar, not a mapping", "nearest existing key: global.environment (line 5)"}},
		{"not a scalar", string(dev), "bitvaultd.image", []string{"key path bitvaultd.image: is a mapping, not a scalar"}},
		{"bad path", string(dev), "bitvaultd..digest", []string{"not a key path"}},
		{"block scalar", "a:\n  digest: |\n    sha256:0\n", "a.digest", []string{"block scalar"}},
		{"multi-line plain", "a:\n  digest: sha256:0\n    continued\n", "a.digest", []string{"spans several lines"}},
		{"alias", "x: &d sha256:0\na:\n  digest: *d\n", "a.digest", []string{"is an alias (*d)"}},
		{"not a mapping", "- a\n- b\n", "a.digest", []string{"not a YAML mapping"}},
		{"not YAML", "a: [\n", "a", []string{"v.yaml: yaml:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Set("v.yaml", []byte(tc.data), []Update{{tc.path, digest('a')}})
			if tc.data == string(dev) {
				_, _, err = Set("deploy-dev.yaml", []byte(tc.data), []Update{{tc.path, digest('a')}})
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	var pe *PathError
	if _, _, err := Set("v.yaml", dev, []Update{{"nope.digest", "x"}}); !errors.As(err, &pe) || pe.Path != "nope.digest" {
		t.Errorf("err = %#v, want a *PathError", err)
	}
}
