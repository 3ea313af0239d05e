// Package policies holds the cluster's admission policies (Kyverno ClusterPolicies, YAML) for
// bitvault's release images. It has no Go code: its tests (admission_test.go) run the pinned
// Kyverno CLI (tools/kyverno, scripts/tools.sh kyverno) offline on these policies against
// images signed and attested the way bvrelease does, in an in-process registry.
package policies
