package rules

import (
	"fmt"
	"regexp"
	"strings"
)

// secretName matches variable names that announce a secret. Names ending in
// _FILE, _PATH or _DIR point at a secret (e.g. a mounted file) rather than
// holding one, and NEXT_PUBLIC_* variables are inlined into the JavaScript
// every browser downloads, so they are public by construction; both are
// allowed (their values are still checked against the credential shapes).
var (
	secretName       = regexp.MustCompile(`(?i)(TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_?KEY)`)
	secretNameExempt = regexp.MustCompile(`(?i)(_(FILE|PATH|DIR)$|^NEXT_PUBLIC_)`)
)

// secretValues are the shapes of real credentials. Each has a label that is
// printed instead of the value: a violation message must never leak the secret
// it found into CI logs.
var secretValues = []struct {
	what string
	re   *regexp.Regexp
}{
	{"a GitHub token", regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{36,}`)},
	{"a GitHub fine-grained token", regexp.MustCompile(`\bgithub_pat_[A-Za-z0-9_]{22,}`)},
	{"an AWS access key ID", regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a PEM private key", regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----`)},
	{"an npm token", regexp.MustCompile(`\bnpm_[A-Za-z0-9]{36}\b`)},
	{"a JWT", regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)},
	{"a GitLab token", regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}`)},
	{"a Slack token", regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}`)},
	{"a password in a URL", regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@'"]+:[^/\s@$'"{][^/\s@'"]*@`)},
}

// assignment finds NAME=value pairs in free text (shell command lines, image
// history such as "RUN |1 NPM_TOKEN=abc /bin/sh -c npm ci"). The name must
// start the text or follow a separator, so "--mount=type=secret,id=x,env=TOKEN"
// does not count: naming a secret mount is the right way to use a secret.
var assignment = regexp.MustCompile(`(?:^|[\s;&|('"])([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|[^\s;&|)]*)`)

// isSecretName reports whether a variable name announces a secret.
func isSecretName(name string) bool {
	return secretName.MatchString(name) && !secretNameExempt.MatchString(name)
}

// secretValue returns a description of the first credential-shaped string in
// s, redacted, or "".
func secretValue(s string) string {
	for _, p := range secretValues {
		if m := p.re.FindString(s); m != "" {
			return fmt.Sprintf("%s (%s)", p.what, redact(m))
		}
	}
	return ""
}

// literalValue reports whether v is a literal value rather than empty or a
// reference to another variable or a secret file.
func literalValue(v string) bool {
	v = strings.Trim(v, `"'`)
	return v != "" && !strings.HasPrefix(v, "$") && !strings.HasPrefix(v, "/run/secrets/")
}

// secretInText looks for credential-shaped values and for secret-named
// variables assigned a literal value in free text. It returns "" when clean.
func secretInText(s string) string {
	if w := secretValue(s); w != "" {
		return "contains " + w
	}
	for _, m := range assignment.FindAllStringSubmatch(s, -1) {
		if isSecretName(m[1]) && literalValue(m[2]) {
			return fmt.Sprintf("assigns a value to %s", m[1])
		}
	}
	return ""
}

// redact keeps just enough of a secret to find it again.
func redact(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----") {
		return "-----BEGIN … PRIVATE KEY-----"
	}
	n := min(4, len(s)/4)
	if i := strings.Index(s, "://"); i >= 0 {
		n = i + 3
	}
	return fmt.Sprintf("%s…, %d chars", s[:n], len(s))
}
