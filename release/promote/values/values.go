// Package values sets scalar values at key paths in a YAML file (a Helm values
// file of the GitOps repository) without reformatting it: the key is located
// in yaml.v3's node tree (line and column) and only that scalar's bytes are
// rewritten in the original text, so comments, key order, indentation,
// quoting and everything else stay byte for byte as they were.
//
// A key path is dot-separated (bitvaultd.image.digest); a key that itself
// contains dots (an artifact named web.v2) is matched too, longest key first.
package values

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Update asks for the scalar at Path to become Value.
type Update struct {
	Path  string
	Value string
}

// Change is one scalar that Set rewrote.
type Change struct {
	Path string
	Line int    // 1-based line of the value in the file
	Old  string // the value before ("" for an empty value)
	New  string
}

// PathError says a key path does not lead to a scalar in File.
type PathError struct {
	File    string
	Path    string
	Line    int    // where the walk stopped (0: the document)
	Msg     string // what is wrong there
	Nearest string // the nearest existing key path (with its line), or ""
}

func (e *PathError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	s := fmt.Sprintf("%s: key path %s: %s", loc, e.Path, e.Msg)
	if e.Nearest != "" {
		s += "; nearest existing key: " + e.Nearest
	}
	return s
}

// edit replaces data[start:end] with text.
type edit struct {
	start, end int
	text       string
}

// Set applies updates to data, the contents of file (named in errors), and
// returns the new contents and the scalars that changed; an update whose
// value is already there changes nothing and is not listed. Only the bytes of
// the changed scalars differ between data and the result: the lines holding
// them, and nothing else.
func Set(file string, data []byte, updates []Update) ([]byte, []Change, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil, &PathError{File: file, Path: firstPath(updates), Msg: "the file is not a YAML mapping"}
	}
	root := doc.Content[0]
	lines := lineStarts(data)
	var edits []edit
	var changes []Change
	changed := map[*yaml.Node]string{}
	for _, u := range updates {
		key, val, err := resolve(file, root, u.Path)
		if err != nil {
			return nil, nil, err
		}
		if strings.ContainsAny(u.Value, "\n\r") {
			return nil, nil, fmt.Errorf("%s: key path %s: the new value is not a single line", file, u.Path)
		}
		if prev, ok := changed[val]; ok && prev != u.Value {
			return nil, nil, fmt.Errorf("%s: key path %s: set twice, to %q and %q", file, u.Path, prev, u.Value)
		}
		if val.Value == u.Value && val.Tag != "!!null" {
			continue
		}
		e, err := scalarEdit(data, lines, key, val, u.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: key path %s: %w", file, val.Line, u.Path, err)
		}
		if _, ok := changed[val]; ok {
			continue
		}
		changed[val] = u.Value
		edits = append(edits, e)
		old := val.Value
		if val.Tag == "!!null" && old != "~" && !strings.EqualFold(old, "null") {
			old = ""
		}
		changes = append(changes, Change{Path: u.Path, Line: val.Line, Old: old, New: u.Value})
	}
	if len(edits) == 0 {
		return data, nil, nil
	}
	slices.SortFunc(edits, func(a, b edit) int { return b.start - a.start })
	out := slices.Clone(data)
	for _, e := range edits {
		out = slices.Concat(out[:e.start], []byte(e.text), out[e.end:])
	}
	if err := check(file, data, out, &doc, changed, changes); err != nil {
		return nil, nil, err
	}
	return out, changes, nil
}

func firstPath(us []Update) string {
	if len(us) == 0 {
		return ""
	}
	return us[0].Path
}

// Get returns the scalar value at path.
func Get(file string, data []byte, path string) (string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", &PathError{File: file, Path: path, Msg: "the file is not a YAML mapping"}
	}
	_, val, err := resolve(file, doc.Content[0], path)
	if err != nil {
		return "", err
	}
	return val.Value, nil
}

// resolve walks path from the root mapping and returns the key and value
// nodes of its last element, which must be a scalar.
func resolve(file string, root *yaml.Node, path string) (*yaml.Node, *yaml.Node, error) {
	if path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
		return nil, nil, &PathError{File: file, Path: path, Msg: "not a key path (keys separated by single dots, e.g. bitvaultd.image.digest)"}
	}
	segs := strings.Split(path, ".")
	m := root
	var walked []string // the keys matched so far
	var key *yaml.Node
	for len(segs) > 0 {
		if m.Kind != yaml.MappingNode {
			return nil, nil, &PathError{File: file, Path: path, Line: m.Line,
				Msg:     fmt.Sprintf("%s is a %s, not a mapping with key %q", strings.Join(walked, "."), kindName(m), segs[0]),
				Nearest: fmt.Sprintf("%s (line %d)", strings.Join(walked, "."), key.Line)}
		}
		found := false
		for n := len(segs); n >= 1 && !found; n-- { // longest key first: keys may contain dots
			want := strings.Join(segs[:n], ".")
			for i := 0; i+1 < len(m.Content); i += 2 {
				if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == want {
					key, m = k, m.Content[i+1]
					walked = append(walked, want)
					segs = segs[n:]
					found = true
					break
				}
			}
		}
		if !found {
			return nil, nil, notFound(file, path, walked, key, m, segs[0])
		}
	}
	if m.Kind == yaml.AliasNode {
		return nil, nil, &PathError{File: file, Path: path, Line: m.Line, Msg: fmt.Sprintf("is an alias (*%s); set the value where its anchor is defined", m.Value)}
	}
	if m.Kind != yaml.ScalarNode {
		return nil, nil, &PathError{File: file, Path: path, Line: m.Line, Msg: fmt.Sprintf("is a %s, not a scalar value", kindName(m))}
	}
	return key, m, nil
}

func notFound(file, path string, walked []string, parent, m *yaml.Node, missing string) error {
	e := &PathError{File: file, Path: path, Line: m.Line}
	prefix := strings.Join(walked, ".")
	where := "the top level"
	if prefix != "" {
		where = prefix
		e.Line = parent.Line
	}
	var keys []string
	best, bestDist := -1, 1<<30
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		keys = append(keys, k.Value)
		if d := distance(strings.ToLower(k.Value), strings.ToLower(missing)); d < bestDist {
			best, bestDist = i, d
		}
	}
	e.Msg = fmt.Sprintf("%s has no key %q", where, missing)
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch {
	case best >= 0 && bestDist <= max(2, len(missing)/3):
		k := m.Content[best]
		e.Nearest = fmt.Sprintf("%s (line %d)", join(k.Value), k.Line)
	case prefix != "":
		e.Nearest = fmt.Sprintf("%s (line %d; its keys: %s)", prefix, parent.Line, strings.Join(keys, ", "))
	case len(keys) > 0:
		e.Nearest = "one of the top-level keys " + strings.Join(keys, ", ")
	}
	return e
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "node"
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// lineStarts returns the byte offset of the start of each line.
func lineStarts(data []byte) []int {
	starts := []int{0}
	for i, b := range data {
		if b == '\n' {
			starts = append(starts, i+1)
		}
	}
	return starts
}

// offset converts yaml.v3's 1-based line and column (counted in characters)
// into a byte offset.
func offset(data []byte, lines []int, line, col int) (int, error) {
	if line < 1 || line > len(lines) || col < 1 {
		return 0, fmt.Errorf("position %d:%d is outside the file", line, col)
	}
	off := lines[line-1]
	for c := 1; c < col; c++ {
		if off >= len(data) || data[off] == '\n' {
			return 0, fmt.Errorf("position %d:%d is outside the line", line, col)
		}
		_, w := utf8.DecodeRune(data[off:])
		off += w
	}
	return off, nil
}

// skipProperties skips a node's anchor (&a) and tag (!!str) and the blanks after them.
func skipProperties(data []byte, off int) int {
	for off < len(data) && (data[off] == '&' || data[off] == '!') {
		for off < len(data) && !isBlank(data[off]) && data[off] != '\n' {
			off++
		}
		for off < len(data) && isBlank(data[off]) {
			off++
		}
	}
	return off
}

func isBlank(b byte) bool { return b == ' ' || b == '\t' }

// scalarExtent returns where the text of scalar n, which starts at off
// (after its properties), ends; it refuses anything but a single-line scalar.
func scalarExtent(data []byte, off int, n *yaml.Node) (int, error) {
	switch n.Style &^ (yaml.TaggedStyle | yaml.FlowStyle) {
	case yaml.DoubleQuotedStyle:
		if off >= len(data) || data[off] != '"' {
			return 0, errors.New("cannot find the opening quote of the value")
		}
		for i := off + 1; i < len(data); i++ {
			switch data[i] {
			case '\\':
				i++
			case '"':
				return i + 1, nil
			case '\n':
				return 0, errors.New("the value spans several lines; make it a single-line scalar")
			}
		}
		return 0, errors.New("unterminated double-quoted value")
	case yaml.SingleQuotedStyle:
		if off >= len(data) || data[off] != '\'' {
			return 0, errors.New("cannot find the opening quote of the value")
		}
		for i := off + 1; i < len(data); i++ {
			switch data[i] {
			case '\'':
				if i+1 < len(data) && data[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, nil
			case '\n':
				return 0, errors.New("the value spans several lines; make it a single-line scalar")
			}
		}
		return 0, errors.New("unterminated single-quoted value")
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return 0, errors.New("the value is a block scalar (| or >); make it a single-line scalar")
	}
	end := off + len(n.Value)
	if end > len(data) || string(data[off:end]) != n.Value {
		return 0, errors.New("the value spans several lines or is written in a form this tool does not rewrite; make it a single-line scalar")
	}
	if end < len(data) && !strings.ContainsRune(" \t\r\n,]}:", rune(data[end])) {
		return 0, errors.New("cannot find the end of the value")
	}
	return end, nil
}

// scalarEdit computes the edit that makes val (the value of key) say v, in
// the scalar's own quoting style.
func scalarEdit(data []byte, lines []int, key, val *yaml.Node, v string) (edit, error) {
	style := val.Style &^ (yaml.TaggedStyle | yaml.FlowStyle)
	text := v
	switch style {
	case yaml.DoubleQuotedStyle:
		text = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
	case yaml.SingleQuotedStyle:
		text = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	default:
		if needsQuotes(v) {
			text = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
		}
	}
	if val.Tag == "!!null" && val.Value == "" && style == 0 {
		// An empty value (`digest:`): insert after the key's colon.
		koff, err := offset(data, lines, key.Line, key.Column)
		if err != nil {
			return edit{}, err
		}
		kend, err := scalarExtent(data, skipProperties(data, koff), key)
		if err != nil {
			return edit{}, fmt.Errorf("key: %w", err)
		}
		i := kend
		for i < len(data) && isBlank(data[i]) {
			i++
		}
		if i >= len(data) || data[i] != ':' {
			return edit{}, errors.New("cannot find the colon after the key")
		}
		return edit{start: i + 1, end: i + 1, text: " " + text}, nil
	}
	off, err := offset(data, lines, val.Line, val.Column)
	if err != nil {
		return edit{}, err
	}
	off = skipProperties(data, off)
	end, err := scalarExtent(data, off, val)
	if err != nil {
		return edit{}, err
	}
	return edit{start: off, end: end, text: text}, nil
}

// needsQuotes reports whether v cannot be written as a plain scalar that
// reads back as the same string.
func needsQuotes(v string) bool {
	if v == "" {
		return true
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte("k: "+v+"\n"), &n); err != nil {
		return true
	}
	if len(n.Content) != 1 || len(n.Content[0].Content) != 2 {
		return true
	}
	s := n.Content[0].Content[1]
	return s.Kind != yaml.ScalarNode || s.Value != v || s.Tag != "!!str"
}

// check re-reads the result and proves that it is the original with exactly
// the changed scalars' values replaced, and that no other line changed.
func check(file string, before, after []byte, doc *yaml.Node, changed map[*yaml.Node]string, changes []Change) error {
	var got yaml.Node
	if err := yaml.Unmarshal(after, &got); err != nil {
		return fmt.Errorf("%s: the rewritten file does not parse (%v); nothing was written", file, err)
	}
	if err := sameTree(doc, &got, changed); err != nil {
		return fmt.Errorf("%s: rewriting would change more than the values asked for (%v); nothing was written", file, err)
	}
	bl, al := bytes.Split(before, []byte("\n")), bytes.Split(after, []byte("\n"))
	if len(bl) != len(al) {
		return fmt.Errorf("%s: rewriting would change the number of lines; nothing was written", file)
	}
	allowed := map[int]bool{}
	for _, c := range changes {
		allowed[c.Line] = true
	}
	for i := range bl {
		if !bytes.Equal(bl[i], al[i]) && !allowed[i+1] {
			return fmt.Errorf("%s:%d: rewriting would change a line without a value to set; nothing was written", file, i+1)
		}
	}
	return nil
}

func sameTree(a, b *yaml.Node, changed map[*yaml.Node]string) error {
	return sameNode(a, b, changed, false)
}

// sameNode compares a and b; loose skips the line comment, which for an empty
// value yaml.v3 attaches to the key and, once filled, to the value (the pair
// is compared as a whole).
func sameNode(a, b *yaml.Node, changed map[*yaml.Node]string, loose bool) error {
	if a.Kind != b.Kind || a.Anchor != b.Anchor || len(a.Content) != len(b.Content) ||
		a.HeadComment != b.HeadComment || (!loose && a.LineComment != b.LineComment) || a.FootComment != b.FootComment {
		return fmt.Errorf("line %d differs", a.Line)
	}
	if v, ok := changed[a]; ok {
		if b.Value != v {
			return fmt.Errorf("line %d: the value reads back as %q, want %q", a.Line, b.Value, v)
		}
	} else if a.Value != b.Value || a.Tag != b.Tag || a.Style != b.Style {
		return fmt.Errorf("line %d: %q became %q", a.Line, a.Value, b.Value)
	}
	for i := range a.Content {
		pairLoose := false
		if a.Kind == yaml.MappingNode {
			k := i &^ 1
			if _, ok := changed[a.Content[k+1]]; ok {
				pairLoose = true
				if i == k && a.Content[k].LineComment+a.Content[k+1].LineComment != b.Content[k].LineComment+b.Content[k+1].LineComment {
					return fmt.Errorf("line %d: the comment moved", a.Content[k].Line)
				}
			}
		}
		if err := sameNode(a.Content[i], b.Content[i], changed, pairLoose); err != nil {
			return err
		}
	}
	return nil
}
