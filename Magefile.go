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
