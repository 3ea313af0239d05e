package rules

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

type want struct {
	rule string
	line int
}

var wantRE = regexp.MustCompile(`^#\s*want:\s*(\S+)(?:\s+line=(\d+))?\s*$`)

// wants reads "# want: <rule>" annotations: the violation is expected on the
// next line, or on the line given by "line=N" (for lines that cannot be
// preceded by a comment, such as a parser directive).
func wants(t *testing.T, src []byte) []want {
	t.Helper()
	var ws []want
	sc := bufio.NewScanner(bytes.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		m := wantRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		w := want{rule: m[1], line: n + 1}
		if m[2] != "" {
			w.line, _ = strconv.Atoi(m[2])
		}
		ws = append(ws, w)
	}
	return ws
}

func got(vs []Violation) []want {
	var ws []want
	for _, v := range vs {
		ws = append(ws, want{v.Rule, v.Line})
	}
	return ws
}

func format(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString(v.String() + "\n")
	}
	return b.String()
}

func TestBadDockerfiles(t *testing.T) {
	files, err := filepath.Glob("testdata/dockerfiles/bad/*.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, path := range files {
		rule := strings.TrimSuffix(filepath.Base(path), ".Dockerfile")
		covered[rule] = true
		t.Run(rule, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ws := wants(t, src)
			if len(ws) != 1 || ws[0].rule != rule {
				t.Fatalf("%s must carry exactly one '# want: %s' annotation, has %v", path, rule, ws)
			}
			vs, err := CheckDockerfile(path, src, DockerfileOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if g := got(vs); !slices.Equal(g, ws) {
				t.Errorf("violations = %v, want %v:\n%s", g, ws, format(vs))
			}
			for _, v := range vs {
				if v.Message == "" || v.Fix == "" || v.File != path {
					t.Errorf("incomplete violation %#v", v)
				}
			}
			golden(t, filepath.Join("testdata/golden", rule+".txt"), format(vs))
		})
	}
	for _, r := range Rules() {
		if !strings.HasPrefix(r, "image-") && !strings.HasPrefix(r, "index-") && !covered[r] {
			t.Errorf("Dockerfile rule %s has no testdata/dockerfiles/bad/%s.Dockerfile", r, r)
		}
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (run go test -update to accept):\n--- want\n%s--- got\n%s", path, want, got)
	}
}

func TestGoodDockerfiles(t *testing.T) {
	for _, tc := range []struct {
		file, target string
	}{
		{"go-multi-target.Dockerfile", "bitvaultd"},
		{"go-multi-target.Dockerfile", "bitvault-worker"},
		{"go-multi-target.Dockerfile", ""},
		{"nextjs.Dockerfile", ""},
		{"nextjs.Dockerfile", "web"},
	} {
		t.Run(tc.file+"/"+tc.target, func(t *testing.T) {
			path := filepath.Join("testdata/dockerfiles/good", tc.file)
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			vs, err := CheckDockerfile(path, src, DockerfileOptions{Target: tc.target})
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 0 {
				t.Errorf("want no violations, got:\n%s", format(vs))
			}
		})
	}
}

const (
	goImg   = "golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d"
	nodeImg = "node:22-bookworm-slim@sha256:83f487e0a63425e5b4d146fb5e5be574bcbe1b7b843d3ebafdd95eaf7767a7e5"
	static  = "gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab"
)

// goDockerfile is a passing Dockerfile; build, final and extra are spliced in.
func goDockerfile(buildExtra, final string) string {
	return fmt.Sprintf(`FROM --platform=$BUILDPLATFORM %s AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
%s
RUN go build -o /out/app ./cmd/app

%s
`, goImg, buildExtra, final)
}

func finalStage(lines ...string) string {
	return "FROM " + static + " AS app\nCOPY --from=build /out/app /app\n" + strings.Join(lines, "\n")
}

// TestDockerfileCases covers the variants of each rule, one rule per case.
// Expected lines count from 1 in the source of the case.
func TestDockerfileCases(t *testing.T) {
	user := "USER 65532:65532"
	for _, tc := range []struct {
		name   string
		src    string
		target string
		want   []want
	}{
		{"good baseline", goDockerfile("", finalStage(user)), "", nil},
		{"user root", goDockerfile("", finalStage("USER root")), "", []want{{RuleFinalUser, 11}}},
		{"user 0", goDockerfile("", finalStage("USER 0:0")), "", []want{{RuleFinalUser, 11}}},
		{"user 1000", goDockerfile("", finalStage("USER 1000")), "", []want{{RuleFinalUser, 11}}},
		{"user group", goDockerfile("", finalStage("USER 65532:0")), "", []want{{RuleFinalUser, 11}}},
		{"no user", goDockerfile("", finalStage()), "", []want{{RuleFinalUser, 9}}},
		{"last user wins", goDockerfile("", finalStage(user, "USER 0")), "", []want{{RuleFinalUser, 12}}},
		{"user 65532 alone", goDockerfile("", finalStage("USER 65532")), "", nil},
		{"healthcheck none is fine", goDockerfile("", finalStage(user, "HEALTHCHECK NONE")), "", nil},
		{"untagged", strings.Replace(goDockerfile("", finalStage(user)), goImg, "golang", 1), "", []want{{RulePinnedFrom, 1}}},
		{"short digest", strings.Replace(goDockerfile("", finalStage(user)), goImg, "golang@sha256:abc", 1), "", []want{{RulePinnedFrom, 1}}},
		{"latest with digest", strings.Replace(goDockerfile("", finalStage(user)), "golang:1.26.8-bookworm", "golang:latest", 1), "", []want{{RuleLatestTag, 1}}},
		{"copy from unpinned image", goDockerfile("", finalStage(user, "COPY --from=alpine:3.20 /etc/ssl/certs /etc/ssl/certs")), "", []want{{RulePinnedFrom, 12}}},
		{"mount from unpinned image", goDockerfile("RUN --mount=from=busybox,target=/bb ls /bb", finalStage(user)), "", []want{{RulePinnedFrom, 6}}},
		{"ARG default pinned", "ARG GO=" + goImg + "\n" + strings.Replace(goDockerfile("", finalStage(user)), goImg, "${GO}", 1), "", nil},
		{"ARG default unpinned", "ARG GO=golang:1.26\n" + strings.Replace(goDockerfile("", finalStage(user)), goImg, "${GO}", 1), "", []want{{RulePinnedFrom, 2}}},
		{"ARG without default", "ARG GO\n" + strings.Replace(goDockerfile("", finalStage(user)), goImg, "${GO}", 1), "", []want{{RulePinnedFrom, 2}}},
		{"scratch final", goDockerfile("", "FROM scratch\nCOPY --from=build /out/app /app\n"+user), "", nil},
		{"distroless debug", goDockerfile("", strings.Replace(finalStage(user), ":nonroot@", ":debug-nonroot@", 1)), "", []want{{RuleFinalBase, 9}}},
		{"final FROM build stage", goDockerfile("", "FROM build AS app\nCOPY --from=build /out/app /app\n"+user), "", []want{{RuleBuildPlatform, 9}, {RuleFinalBase, 9}}},
		{"hardcoded platform", strings.Replace(goDockerfile("", finalStage(user)), "$BUILDPLATFORM", "linux/amd64", 1), "", []want{{RuleBuildPlatform, 1}}},
		{"platform inherited from stage", goDockerfile("", "FROM build AS tests\nRUN go vet ./...\n"+finalStage(user, "COPY --from=tests /src/go.mod /go.mod")), "", nil},
		{"final on build platform", goDockerfile("", strings.Replace(finalStage(user), "FROM ", "FROM --platform=$BUILDPLATFORM ", 1)), "", []want{{RuleBuildPlatform, 9}}},
		{"braced BUILDPLATFORM", strings.Replace(goDockerfile("", finalStage(user)), "$BUILDPLATFORM", "${BUILDPLATFORM}", 1), "", nil},
		{"ENV secret name", goDockerfile("ENV NPM_TOKEN=abc", finalStage(user)), "", []want{{RuleBuildSecret, 6}}},
		{"ENV secret file is fine", goDockerfile("ENV NPM_TOKEN_FILE=/run/secrets/npm", finalStage(user)), "", nil},
		{"NEXT_PUBLIC_ is public", goDockerfile("ENV NEXT_PUBLIC_MAPS_API_KEY=AIzaSyA-public", finalStage(user)), "", nil},
		{"NEXT_PUBLIC_ value still checked", goDockerfile("ENV NEXT_PUBLIC_X=npm_abcdefghijklmnopqrstuvwxyz0123456789", finalStage(user)), "", []want{{RuleBuildSecret, 6}}},
		{"go install tool@version needs no go.mod", "FROM --platform=$BUILDPLATFORM " + goImg + " AS tools\nRUN go install golang.org/x/tools/cmd/stringer@v0.30.0\n" +
			"FROM " + static + "\nCOPY --from=tools /go/bin/stringer /stringer\nUSER 65532", "", nil},
		{"go install local needs go.mod", "FROM --platform=$BUILDPLATFORM " + goImg + " AS tools\nCOPY . .\nRUN go install ./cmd/x\n" +
			"FROM " + static + "\nCOPY --from=tools /go/bin/x /x\nUSER 65532", "", []want{{RuleDepsFirst, 2}}},
		{"ENV secret value", goDockerfile("ENV GOPROXY_AUTH=ghp_abcdefghijklmnopqrstuvwxyz0123456789", finalStage(user)), "", []want{{RuleBuildSecret, 6}}},
		{"meta ARG secret", "ARG AWS_SECRET_ACCESS_KEY\n" + goDockerfile("", finalStage(user)), "", []want{{RuleBuildSecret, 1}}},
		{"RUN with key", goDockerfile("RUN AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE go env", finalStage(user)), "", []want{{RuleBuildSecret, 6}}},
		{"RUN assigns secret", goDockerfile("RUN GH_PASSWORD=hunter2 go env", finalStage(user)), "", []want{{RuleBuildSecret, 6}}},
		{"RUN secret mount is fine", goDockerfile("RUN --mount=type=secret,id=netrc,env=GITHUB_TOKEN go env", finalStage(user)), "", nil},
		{"LABEL JWT", goDockerfile("", finalStage(user, `LABEL x="eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"`)), "", []want{{RuleBuildSecret, 12}}},
		{"PEM in heredoc", goDockerfile("COPY <<EOF /key.pem\n-----BEGIN RSA PRIVATE KEY-----\nEOF", finalStage(user)), "", []want{{RuleBuildSecret, 6}}},
		{"ADD git", goDockerfile("ADD git@github.com:bitvault/x.git /x", finalStage(user)), "", []want{{RuleRemoteAdd, 6}}},
		{"ADD local is fine", goDockerfile("", finalStage(user, "ADD config.tar /etc/bitvault/")), "", nil},
		{"no go mod download", strings.Replace(goDockerfile("", finalStage(user)), "RUN go mod download\n", "", 1), "", []want{{RuleDepsFirst, 4}}},
		{"go mod download without go.mod", strings.Replace(goDockerfile("", finalStage(user)), "COPY go.mod go.sum ./\n", "", 1), "", []want{{RuleDepsFirst, 4}}},
		{"bind mounted go.mod", strings.Replace(goDockerfile("", finalStage(user)), "COPY go.mod go.sum ./\nRUN go mod download", "RUN --mount=type=bind,source=go.mod,target=go.mod go mod download", 1), "", nil},
		{"source copied piecewise", strings.Replace(goDockerfile("", finalStage(user)), "COPY go.mod go.sum ./\n", "COPY go.mod go.sum ./\nCOPY cmd/ cmd/\n", 1), "", []want{{RuleDepsFirst, 4}}},
		{"node without lockfile", `FROM --platform=$BUILDPLATFORM ` + nodeImg + ` AS build
WORKDIR /app
COPY package.json ./
RUN npm ci
COPY . .
RUN npm run build
FROM gcr.io/distroless/nodejs22-debian12:nonroot@sha256:13593b7570658e8477de39e2f4a1dd25db2f836d68a0ba771251572d23bb4f8e
COPY --from=build /app/.next/standalone ./
USER 65532`, "", []want{{RuleDepsFirst, 5}}},
		{"node glob manifests", `FROM --platform=$BUILDPLATFORM ` + nodeImg + ` AS build
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY . .
RUN npm run build
FROM gcr.io/distroless/nodejs22-debian12:nonroot@sha256:13593b7570658e8477de39e2f4a1dd25db2f836d68a0ba771251572d23bb4f8e
COPY --from=build /app/.next/standalone ./
USER 65532`, "", nil},
		{"deps inherited from stage", `FROM --platform=$BUILDPLATFORM ` + nodeImg + ` AS deps
WORKDIR /app
COPY package.json yarn.lock ./
RUN yarn install --frozen-lockfile
FROM deps AS build
COPY . .
RUN yarn build
FROM gcr.io/distroless/nodejs22-debian12:nonroot@sha256:13593b7570658e8477de39e2f4a1dd25db2f836d68a0ba771251572d23bb4f8e
COPY --from=build /app/.next/standalone ./
USER 65532`, "", nil},
		{"unrelated stage ignored", "FROM ubuntu AS junk\nRUN apt-get update\n" + goDockerfile("", finalStage(user)), "app", nil},
		{"target selects stage", goDockerfile("", finalStage(user)+"\nFROM ubuntu AS dev\nRUN true"), "app", nil},
		{"single stage", "FROM " + static + "\nCOPY app /app\nUSER 65532", "", []want{{RuleMultiStage, 1}}},
		{"final RUN shell form", goDockerfile("", finalStage(user, "RUN echo hi")), "", []want{{RuleFinalRun, 12}}},
		{"healthcheck inherited", goDockerfile("", "FROM "+static+" AS base\nHEALTHCHECK CMD [\"/app\"]\nFROM base AS app\nCOPY --from=build /out/app /app\n"+user), "", []want{{RuleHealthcheck, 10}}},
		{"syntax directive with other directive", "# escape=\\\n# syntax=docker/dockerfile:1\n" + goDockerfile("", finalStage(user)), "", []want{{RuleSyntaxDirective, 2}}},
		{"syntax-like comment later is fine", goDockerfile("", finalStage(user, "# syntax=docker/dockerfile:1")), "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := CheckDockerfile("Dockerfile", []byte(tc.src), DockerfileOptions{Target: tc.target})
			if err != nil {
				t.Fatal(err)
			}
			if g := got(vs); !slices.Equal(g, tc.want) {
				t.Errorf("violations = %v, want %v:\n%s\nsource:\n%s", g, tc.want, format(vs), numbered(tc.src))
			}
		})
	}
}

func numbered(s string) string {
	var b strings.Builder
	for i, l := range strings.Split(s, "\n") {
		fmt.Fprintf(&b, "%3d %s\n", i+1, l)
	}
	return b.String()
}

func TestDockerfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, target, want string
	}{
		{"unknown instruction", "FROM scratch\nFROB x\n", "", "Dockerfile:2: "},
		{"bad flag", "FROM scratch\nCOPY --nope=1 a b\n", "", "Dockerfile:2: "},
		{"unterminated heredoc", "FROM scratch\nRUN <<EOF\necho\n", "", "Dockerfile:2: "},
		{"empty", "# nothing\n", "", "Dockerfile"},
		{"instruction before FROM", "ENV A=b\nFROM scratch\n", "", "Dockerfile:1: "},
		{"missing target", "FROM scratch AS a\n", "b", `target stage "b" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CheckDockerfile("Dockerfile", []byte(tc.src), DockerfileOptions{Target: tc.target})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestViolationString(t *testing.T) {
	for _, tc := range []struct {
		v    Violation
		want string
	}{
		{Violation{Rule: "pinned-from", File: "service/Dockerfile", Line: 12, Message: "FROM node:22 is not pinned by digest", Fix: "pin it: FROM node:22@sha256:<digest>"},
			"service/Dockerfile:12: pinned-from: FROM node:22 is not pinned by digest; pin it: FROM node:22@sha256:<digest>"},
		{Violation{Rule: "image-user", Image: "bitvaultd", Platform: "linux/arm64", Message: `config User "0" is root`, Fix: "set USER 65532:65532"},
			`bitvaultd linux/arm64: image-user: config User "0" is root; set USER 65532:65532`},
		{Violation{Rule: "multi-stage", File: "Dockerfile", Message: "m"}, "Dockerfile: multi-stage: m"},
		{Violation{Rule: "index-platforms", Image: "bitvaultd", Message: "m", Fix: "f"}, "bitvaultd: index-platforms: m; f"},
		{Violation{Rule: "image-user", Message: "m"}, "image: image-user: m"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

// A "# check=" comment makes BuildKit merge linter config; it must not crash.
func TestCheckDirectiveComment(t *testing.T) {
	src := goDockerfile("# check=skip=all\nENV A=b", finalStage("USER 65532"))
	vs, err := CheckDockerfile("Dockerfile", []byte(src), DockerfileOptions{})
	if err != nil || len(vs) != 0 {
		t.Errorf("err = %v, violations:\n%s", err, format(vs))
	}
}
