// Package workflows holds the tests of the GitHub Actions workflows in
// .github/workflows and the local actions in .github/actions: actionlint
// (as a library) and this repository's own rules — a read-only token by
// default, third-party actions pinned by commit SHA, id-token and packages
// write only where a release is signed and pushed, no pull_request_target.
package workflows
