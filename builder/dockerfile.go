package builder

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// BaseRefs returns the external images a Dockerfile target is built FROM,
// exactly as written (tag and digest included), in order of first use:
// stages referring to earlier stages and `scratch` are left out. An empty
// target means the last stage.
func BaseRefs(path string, src []byte, target string) ([]string, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM instruction", path)
	}
	last := len(stages) - 1
	if target != "" {
		last = -1
		for i, s := range stages {
			if strings.EqualFold(s.Name, target) {
				last = i
			}
		}
		if last < 0 {
			return nil, fmt.Errorf("%s: no stage named %q (targets: %s)", path, target, stageNames(stages))
		}
	}
	args := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				args[kv.Key] = *kv.Value
			}
		}
	}
	named := map[string]int{}
	for i, s := range stages {
		if s.Name != "" {
			named[strings.ToLower(s.Name)] = i
		}
	}
	// Walk the stages the target needs: its FROM chain and every COPY --from / RUN --mount from.
	need := map[int]bool{}
	var visit func(i int)
	visit = func(i int) {
		if need[i] {
			return
		}
		need[i] = true
		s := stages[i]
		if j, ok := named[strings.ToLower(expand(s.BaseName, args))]; ok && j < i {
			visit(j)
		}
		for _, cmd := range s.Commands {
			for _, from := range fromRefs(cmd) {
				if j, ok := named[strings.ToLower(from)]; ok {
					visit(j)
				}
			}
		}
	}
	visit(last)
	var refs []string
	for i, s := range stages {
		if !need[i] {
			continue
		}
		base := expand(s.BaseName, args)
		if _, isStage := named[strings.ToLower(base)]; isStage || base == "scratch" {
			continue
		}
		if !slices.Contains(refs, base) {
			refs = append(refs, base)
		}
	}
	return refs, nil
}

func fromRefs(cmd instructions.Command) []string {
	var out []string
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			out = append(out, c.From)
		}
	case *instructions.RunCommand:
		for _, m := range instructions.GetMounts(c) {
			if m.From != "" {
				out = append(out, m.From)
			}
		}
	}
	return out
}

func expand(s string, args map[string]string) string {
	for k, v := range args {
		s = strings.ReplaceAll(s, "${"+k+"}", v)
		s = strings.ReplaceAll(s, "$"+k, v)
	}
	return s
}

func stageNames(stages []instructions.Stage) string {
	var n []string
	for _, s := range stages {
		if s.Name != "" {
			n = append(n, s.Name)
		}
	}
	return strings.Join(n, ", ")
}
