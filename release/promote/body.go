package promote

import (
	"fmt"
	"strings"

	"github.com/bitvault/bitvault/attest/admission"
)

// AttestationRef is where cosign stores the attestations of repository@digest:
// <repository>:sha256-<hex>.att.
func AttestationRef(repository, digest string) string {
	return repository + ":" + strings.Replace(digest, ":", "-", 1) + ".att"
}

func (q *Request) title() string {
	return fmt.Sprintf("Promote %s v%s to %s", q.Project, strings.TrimPrefix(q.Version, "v"), q.Env)
}

func (q *Request) commitMessage(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", q.title())
	for _, im := range q.Images {
		fmt.Fprintf(&b, "%s: %s", im.Artifact, im.Digest)
		if prev := res.Previous[im.Artifact]; prev != im.Digest && prev != "" {
			fmt.Fprintf(&b, " (was %s)", prev)
		} else if prev == im.Digest {
			b.WriteString(" (unchanged)")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nEach image verified as admission will (signature, SLSA provenance, SBOMs,\nvulnerability attestation, referrers) by bvrelease promote; only %s changes.\n", q.keysPhrase(res))
	return b.String()
}

func (q *Request) keysPhrase(res *Result) string {
	keys := map[string]bool{}
	var list []string
	for _, im := range q.Images {
		k := res.Keys[im.Artifact]
		if !keys[k] {
			keys[k] = true
			list = append(list, k)
		}
	}
	return strings.Join(list, ", ") + " in " + res.File
}

// cell makes s safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

func short(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// body is the pull request description: versions, digests, provenance
// references, the verification table.
func (q *Request) body(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", q.title())
	fmt.Fprintf(&b, "Sets each image's digest in `%s` (and nothing else) to release **%s %s**.\n\n", res.File, q.Project, q.Version)
	b.WriteString("| Image | Key | Digest | Previously |\n|---|---|---|---|\n")
	for _, im := range q.Images {
		prev := res.Previous[im.Artifact]
		switch prev {
		case im.Digest:
			prev = "(unchanged)"
		case "":
			prev = "(empty)"
		default:
			prev = "`" + prev + "`"
		}
		fmt.Fprintf(&b, "| %s | `%s` | `%s` | %s |\n", im.Artifact, res.Keys[im.Artifact], im.Ref(), prev)
	}

	b.WriteString("\n### Provenance\n\nSLSA provenance v1, SBOM and vulnerability attestations (cosign `.att`), per manifest:\n\n")
	for i, im := range q.Images {
		seen := map[string]bool{}
		for _, c := range reportChecks(res.Reports, i) {
			if seen[c.Digest] {
				continue
			}
			seen[c.Digest] = true
			fmt.Fprintf(&b, "- %s %s: `%s`\n", im.Artifact, c.Manifest, AttestationRef(im.Repository, c.Digest))
		}
		if len(seen) == 0 {
			fmt.Fprintf(&b, "- %s index: `%s`\n", im.Artifact, AttestationRef(im.Repository, im.Digest))
		}
	}

	b.WriteString("\n### Verification\n\nChecked before promoting, as cluster admission will (`bvrelease verify`):\n\n")
	b.WriteString("| Image | Manifest | Digest | Check | Status | Detail |\n|---|---|---|---|---|---|\n")
	for i, im := range q.Images {
		for _, c := range reportChecks(res.Reports, i) {
			status := c.Status
			if status == admission.Failed {
				status = "FAIL"
			}
			fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s | %s |\n", im.Artifact, c.Manifest, short(c.Digest), c.Check, status, cell(c.Detail))
		}
	}
	b.WriteString("\n<sub>Opened by `bvrelease promote`. A later promotion of the same release to " + q.Env + " updates this pull request.</sub>\n")
	return b.String()
}

func reportChecks(reports []admission.Report, i int) []admission.Check {
	if i < len(reports) {
		return reports[i].Checks
	}
	return nil
}

// UnifiedDiff is a unified diff (3 lines of context) of a and b, two versions
// of file with the same number of lines, as `git diff` prints it.
func UnifiedDiff(file string, a, b []byte) []byte {
	al, bl := splitLines(string(a)), splitLines(string(b))
	if len(al) != len(bl) {
		// Not produced by values.Set; show the whole file.
		return wholeDiff(file, al, bl)
	}
	var changed []int
	for i := range al {
		if al[i] != bl[i] {
			changed = append(changed, i)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	const ctx = 3
	var out strings.Builder
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n", file, file)
	for i := 0; i < len(changed); {
		start := max(0, changed[i]-ctx)
		j := i
		for j+1 < len(changed) && changed[j+1]-changed[j] <= 2*ctx {
			j++
		}
		end := min(len(al), changed[j]+ctx+1)
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(start, end-start), hunkRange(start, end-start))
		for k := start; k < end; {
			if al[k] == bl[k] {
				writeLine(&out, " ", al[k])
				k++
				continue
			}
			m := k
			for m < end && al[m] != bl[m] {
				m++
			}
			for x := k; x < m; x++ {
				writeLine(&out, "-", al[x])
			}
			for x := k; x < m; x++ {
				writeLine(&out, "+", bl[x])
			}
			k = m
		}
		i = j + 1
	}
	return []byte(out.String())
}

func wholeDiff(file string, al, bl []string) []byte {
	var out strings.Builder
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n@@ -%s +%s @@\n", file, file, hunkRange(0, len(al)), hunkRange(0, len(bl)))
	for _, l := range al {
		writeLine(&out, "-", l)
	}
	for _, l := range bl {
		writeLine(&out, "+", l)
	}
	return []byte(out.String())
}

func hunkRange(start, n int) string {
	if n == 1 {
		return fmt.Sprint(start + 1)
	}
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

func writeLine(out *strings.Builder, prefix, l string) {
	out.WriteString(prefix)
	out.WriteString(l)
	if !strings.HasSuffix(l, "\n") {
		out.WriteString("\n\\ No newline at end of file\n")
	}
}

// splitLines splits s into lines that keep their "\n".
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
