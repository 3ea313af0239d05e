package client

import (
	"context"
	"net/http"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// SplitPath splits a remote path ("/docs/a.txt", "docs/a.txt") into its names, NFC-normalized
// like the server stores them; "/" and "" are the root (no names). "." segments and empty
// segments are dropped, ".." goes up.
func SplitPath(p string) []string {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, norm.NFC.String(s))
		}
	}
	return segs
}

// CleanPath is p in canonical form: "/" followed by its names joined with "/".
func CleanPath(p string) string { return JoinPath(SplitPath(p)) }

// JoinPath joins names into a canonical path.
func JoinPath(segs []string) string { return "/" + strings.Join(segs, "/") }

// Root is the root folder, which has no node of its own (its id is "").
var Root = Node{Type: TypeFolder, Path: "/"}

// Lookup resolves a path to its live node by listing the folders on the way; "/" is Root.
// A missing name is an *Error with code not_found.
func (c *Client) Lookup(ctx context.Context, path string) (Node, error) {
	segs := SplitPath(path)
	n := Root
	for i, name := range segs {
		if !n.IsFolder() {
			return Node{}, &Error{StatusCode: http.StatusNotFound, Code: CodeNotFound, Message: JoinPath(segs[:i]) + " is a file, not a folder"}
		}
		child, err := c.Child(ctx, n.ID, name)
		if err != nil {
			return Node{}, err
		}
		if child == nil {
			return Node{}, &Error{StatusCode: http.StatusNotFound, Code: CodeNotFound, Message: JoinPath(segs[:i+1]) + ": no such file or folder"}
		}
		n = *child
	}
	n.Path = JoinPath(segs)
	return n, nil
}

// Child returns the live child of folder parentID ("" for the root) named name, or nil.
// Listings are ordered by name (bytes), so it stops at the first page past name.
func (c *Client) Child(ctx context.Context, parentID, name string) (*Node, error) {
	name = norm.NFC.String(name)
	cursor := ""
	for {
		p, err := c.List(ctx, parentID, cursor, MaxPageSize)
		if err != nil {
			return nil, err
		}
		for _, n := range p.Nodes {
			if n.Name == name {
				return &n, nil
			}
			if n.Name > name {
				return nil, nil
			}
		}
		if p.NextCursor == "" {
			return nil, nil
		}
		cursor = p.NextCursor
	}
}
