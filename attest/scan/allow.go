package scan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultAllowList is the allow-list's path relative to the repository root.
const DefaultAllowList = ".bvrelease/vuln-allow.yaml"

// AllowList accepts findings for a limited time. The file:
//
//	entries:
//	  - id: CVE-2022-32149          # required: the finding's ID or one of its aliases (GO-2022-1059)
//	    reason: "not reachable: ..." # required: why shipping it is acceptable until expires
//	    expires: 2026-12-31          # required, YYYY-MM-DD: valid through that day (UTC)
//	    package: golang.org/x/text   # optional: only this package
//	    image: bitvaultd             # optional: only this artifact (all its platforms)
//
// Unknown fields are errors.
type AllowList struct {
	Entries []AllowEntry
}

// AllowEntry is one allow-list entry.
type AllowEntry struct {
	ID, Reason     string
	Expires        time.Time // midnight UTC of the expiry day
	Package, Image string    // "" = any
	File           string    // where the entry is written
	Line           int
}

// Expired reports whether the entry no longer applies at now: from the day after Expires (UTC).
func (e AllowEntry) Expired(now time.Time) bool {
	return !now.UTC().Before(e.Expires.AddDate(0, 0, 1))
}

// Matches reports whether the entry covers f (expiry not considered).
func (e AllowEntry) Matches(f Finding) bool {
	if e.Package != "" && e.Package != f.Package {
		return false
	}
	if e.Image != "" && e.Image != f.Image {
		return false
	}
	if strings.EqualFold(e.ID, f.ID) {
		return true
	}
	for _, a := range f.Aliases {
		if strings.EqualFold(e.ID, a) {
			return true
		}
	}
	return false
}

func (e AllowEntry) String() string {
	s := e.ID
	var scope []string
	if e.Package != "" {
		scope = append(scope, "package "+e.Package)
	}
	if e.Image != "" {
		scope = append(scope, "image "+e.Image)
	}
	if len(scope) > 0 {
		s += " (" + strings.Join(scope, ", ") + ")"
	}
	return s
}

var entryFields = []string{"expires", "id", "image", "package", "reason"}

// LoadAllowList reads an allow-list file. A missing file (or path "") is an empty list. Every
// malformed entry is reported, as "FILE:LINE: field: what is wrong; how to fix".
func LoadAllowList(path string) (*AllowList, error) {
	al := &AllowList{}
	if path == "" {
		return al, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return al, nil
	}
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return al, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return al, nil // only comments
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: want a mapping with 'entries:' (a list of {id, reason, expires, package, image})", path, root.Line)
	}
	var errs []error
	fail := func(line int, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, a...)))
	}
	var entries *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "entries" {
			fail(k.Line, "%s: unknown field; the only top-level field is entries", k.Value)
			continue
		}
		entries = v
	}
	if entries != nil && !(entries.Kind == yaml.ScalarNode && entries.Tag == "!!null") {
		if entries.Kind != yaml.SequenceNode {
			fail(entries.Line, "entries: want a list of entries (- id: ..., reason: ..., expires: YYYY-MM-DD)")
		} else {
			for _, n := range entries.Content {
				if e, ok := parseEntry(path, n, fail); ok {
					al.Entries = append(al.Entries, e)
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return al, nil
}

func parseEntry(path string, n *yaml.Node, fail func(int, string, ...any)) (AllowEntry, bool) {
	e := AllowEntry{File: path, Line: n.Line}
	if n.Kind != yaml.MappingNode {
		fail(n.Line, "entry: want a mapping with id, reason and expires")
		return e, false
	}
	ok := true
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if _, dup := lines[k.Value]; dup {
			fail(k.Line, "%s: given twice in this entry", k.Value)
			ok = false
			continue
		}
		lines[k.Value] = k.Line
		if v.Kind != yaml.ScalarNode {
			if slices.Contains(entryFields, k.Value) {
				fail(v.Line, "%s: want a single value", k.Value)
				ok = false
				continue
			}
		}
		val := strings.TrimSpace(v.Value)
		switch k.Value {
		case "id":
			e.ID = val
		case "reason":
			e.Reason = val
		case "package":
			e.Package = val
		case "image":
			e.Image = val
		case "expires":
			t, err := time.Parse(time.DateOnly, val)
			if err != nil {
				fail(v.Line, "expires: %q is not a date; write YYYY-MM-DD, e.g. expires: %s", val, time.Now().UTC().AddDate(0, 3, 0).Format(time.DateOnly))
				ok = false
			}
			e.Expires = t
		default:
			fail(k.Line, "%s: unknown field; known fields here: %s", k.Value, strings.Join(entryFields, ", "))
			ok = false
		}
	}
	name := "entry"
	if e.ID != "" {
		name = e.ID
	}
	if e.ID == "" {
		fail(n.Line, "id: missing; name the finding's ID (e.g. id: CVE-2022-32149)")
		ok = false
	}
	if e.Reason == "" {
		fail(n.Line, "reason: missing for %s; say why shipping it is acceptable until it expires", name)
		ok = false
	}
	if _, given := lines["expires"]; !given {
		fail(n.Line, "expires: missing for %s; add expires: YYYY-MM-DD (when to look again)", name)
		ok = false
	}
	return e, ok
}
