//go:build mage

// Mage targets for the BitVault repository (run with `go tool mage <target>`).
// Each target calls the same scripts and commands the README gives.
package main

import (
	"os"
	"os/exec"
)

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = os.Stdout, os.Stderr, os.Stdin
	return cmd.Run()
}

// Setup installs runc and git and builds the pinned tools (cached by version).
func Setup() error { return run("./scripts/setup.sh") }

// Dryrun runs a full local release dry-run.
func Dryrun() error {
	if err := Setup(); err != nil {
		return err
	}
	return run("go", "run", "./cmd/bvrelease", "release", "--dry-run")
}

// Test runs the whole test suite.
func Test() error {
	if err := Setup(); err != nil {
		return err
	}
	return run("./scripts/test.sh")
}

// Bench prints build timings and image sizes (internal/cmd/bvbench).
func Bench() error {
	if err := run("./scripts/tools.sh", "buildkit", "ko"); err != nil {
		return err
	}
	return run("go", "run", "./internal/cmd/bvbench")
}

// Build builds the images into dist/oci and verifies they are reproducible.
func Build() error {
	return run("go", "run", "./cmd/bvrelease", "build", "--verify-reproducible")
}

// Release runs the whole pipeline: a real release where CI credentials are (GitHub Actions with
// an OIDC token: keyless signing, as .github/workflows/release.yml runs it), a dry-run anywhere else.
func Release() error {
	if err := Setup(); err != nil {
		return err
	}
	return run("go", "run", "./cmd/bvrelease", "release")
}

// Policy checks bvrelease.yaml (its rules and JSON Schema) and that the admission policies in
// policies/ are what it generates, as CI's policy job does ('go run ./cmd/bvrelease policy'
// rewrites them).
func Policy() error {
	if err := run("go", "run", "./cmd/bvrelease", "config", "validate"); err != nil {
		return err
	}
	return run("go", "run", "./cmd/bvrelease", "policy", "--check")
}

// Tools builds every pinned tool of tools/ (cached by version; the first time takes a while).
func Tools() error {
	return run("./scripts/tools.sh", "buildkit", "trivy", "trivydb", "cosign", "kyverno", "ko")
}

// Docs regenerates docs/bvrelease-yaml.md from release/config/schema.json.
func Docs() error {
	return run("go", "test", "-count=1", "./release/config", "-run", "^TestReference$", "-update")
}
