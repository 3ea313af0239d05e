package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Violation is one broken design rule, located either in a Dockerfile (File,
// Line) or in a built image (Image, Platform).
type Violation struct {
	Rule     string `json:"rule"`               // stable ID, e.g. "pinned-from"
	File     string `json:"file,omitempty"`     // Dockerfile path (Dockerfile rules) or ""
	Line     int    `json:"line,omitempty"`     // 1-based line in File; 0 when the rule is about the whole file
	Image    string `json:"image,omitempty"`    // artifact name (image rules)
	Platform string `json:"platform,omitempty"` // "linux/arm64" (image rules)
	Message  string `json:"message"`            // what is wrong
	Fix      string `json:"fix,omitempty"`      // how to fix
}

// String renders the violation for humans:
//
//	service/Dockerfile:12: pinned-from: FROM node:22 is not pinned by digest; pin it: FROM node:22@sha256:<digest>
//	bitvaultd linux/arm64: image-user: config User is "0" (root); set USER 65532:65532 in the final stage
func (v Violation) String() string {
	var b strings.Builder
	if v.File != "" {
		b.WriteString(v.File)
		if v.Line > 0 {
			fmt.Fprintf(&b, ":%d", v.Line)
		}
	} else {
		b.WriteString(cmp.Or(v.Image, "image"))
		if v.Platform != "" {
			b.WriteString(" " + v.Platform)
		}
	}
	b.WriteString(": " + v.Rule + ": " + v.Message)
	if v.Fix != "" {
		b.WriteString("; " + v.Fix)
	}
	return b.String()
}

// sortDockerfile orders Dockerfile violations by line, then rule, keeping the
// relative order of equal entries.
func sortDockerfile(vs []Violation) {
	slices.SortStableFunc(vs, func(a, b Violation) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Rule, b.Rule))
	})
}
