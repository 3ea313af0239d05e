package scan

import (
	"fmt"
	"strings"
	"time"
)

// Verdict is the gate's decision over all scanned images.
type Verdict struct {
	// Blocking: CRITICAL/HIGH findings with a fixed version, not covered by a live allow-list
	// entry. Any of them fails the release.
	Blocking []Finding
	// Allowed: CRITICAL/HIGH findings covered by a live allow-list entry.
	Allowed []Finding
	// Expired: allow-list entries past their expiry date. Any of them fails the release, whether
	// or not it still matches a finding (the decision must be looked at again).
	Expired []AllowEntry
	// NoFix: CRITICAL/HIGH findings for which no fixed version exists, not allow-listed. They do
	// not fail the release (there is nothing to upgrade to) but are reported; once the DB knows a
	// fix they block.
	NoFix []Finding
}

// gated reports whether the gate acts on a severity.
func gated(severity string) bool {
	return severity == "CRITICAL" || severity == "HIGH"
}

// Gate decides over the reports of one release: see Verdict. allow may be nil.
func Gate(reports []*Report, allow *AllowList, now time.Time) Verdict {
	var v Verdict
	var live []AllowEntry
	if allow != nil {
		for _, e := range allow.Entries {
			if e.Expired(now) {
				v.Expired = append(v.Expired, e)
			} else {
				live = append(live, e)
			}
		}
	}
	for _, r := range reports {
		if r == nil {
			continue
		}
		for _, f := range r.Findings {
			if f.Image == "" {
				f.Image = r.Name
			}
			if f.Platform == "" {
				f.Platform = r.Platform
			}
			if !gated(f.Severity) {
				continue
			}
			allowed := false
			for _, e := range live {
				if e.Matches(f) {
					allowed = true
					break
				}
			}
			switch {
			case allowed:
				v.Allowed = append(v.Allowed, f)
			case f.Fixed != "":
				v.Blocking = append(v.Blocking, f)
			default:
				v.NoFix = append(v.NoFix, f)
			}
		}
	}
	sortFindings(v.Blocking)
	sortFindings(v.Allowed)
	sortFindings(v.NoFix)
	return v
}

// Line formats a finding as the gate reports it:
// "bitvaultd linux/arm64: golang.org/x/text 0.3.7 → 0.3.8 CVE-2022-32149 (HIGH)".
func (f Finding) Line() string {
	fixed := f.Fixed
	if fixed == "" {
		fixed = "no fix"
	}
	return fmt.Sprintf("%s %s: %s %s → %s %s (%s)", f.Image, f.Platform, f.Package, f.Installed, fixed, f.ID, f.Severity)
}

// Err is nil when nothing blocks; else it lists every blocking finding (once per image,
// platform, package and ID, even when several files carry it) and every expired entry, with how
// to fix them.
func (v Verdict) Err() error {
	if len(v.Blocking) == 0 && len(v.Expired) == 0 {
		return nil
	}
	var b strings.Builder
	var parts []string
	if n := len(v.Blocking); n > 0 {
		parts = append(parts, plural(n, "fixable CRITICAL/HIGH finding", "fixable CRITICAL/HIGH findings"))
	}
	if n := len(v.Expired); n > 0 {
		parts = append(parts, plural(n, "expired allow-list entry", "expired allow-list entries"))
	}
	fmt.Fprintf(&b, "vulnerability gate: %s", strings.Join(parts, " and "))
	seen := map[string]bool{}
	for _, f := range v.Blocking {
		l := f.Line()
		if !seen[l] {
			seen[l] = true
			fmt.Fprintf(&b, "\n  %s", l)
		}
	}
	if len(v.Blocking) > 0 {
		fmt.Fprintf(&b, "\n  fix: upgrade each package to the fixed version and rebuild; to ship it anyway for a while, add an entry (id, reason, expires: YYYY-MM-DD) to %s", DefaultAllowList)
	}
	for _, e := range v.Expired {
		fmt.Fprintf(&b, "\n  %s:%d: allow-list entry %s expired on %s; fix the finding and delete the entry, or review the reason and set a later expires",
			e.File, e.Line, e, e.Expires.Format(time.DateOnly))
	}
	return fmt.Errorf("%s", b.String())
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
