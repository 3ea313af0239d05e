// Package keyless signs the way a release in GitHub Actions does with no long-lived key:
//
//  1. an ephemeral ECDSA P-256 key, in memory only;
//  2. an OIDC identity token for the audience "sigstore" from GitHub Actions
//     (ACTIONS_ID_TOKEN_REQUEST_URL / ACTIONS_ID_TOKEN_REQUEST_TOKEN, present only when the job
//     has `permissions: id-token: write`);
//  3. a short-lived code-signing certificate from Fulcio for that key, proving possession by
//     signing the token's subject; Fulcio puts the workflow identity in the certificate
//     (URI SAN https://github.com/<repo>/.github/workflows/<file>@<ref>, issuer
//     https://token.actions.githubusercontent.com, and its GitHub extensions);
//  4. every signature and attestation entered in Rekor; the signed entry timestamp comes back
//     and is stored with the signature (cosign's bundle annotation), so verification needs
//     only a trusted root, offline.
//
// Each service sits behind a small interface (TokenSource, CertificateAuthority,
// sign.TransparencyLog) with one real implementation here (GitHubActions, Fulcio, Rekor),
// speaking the services' real HTTP APIs through their own Go clients; tests point the same
// clients at internal/testsupport/sigstoretest. Every call is retried with backoff on network
// errors and 5xx answers (retry.Default: 4 attempts), then fails naming the service and URL.
package keyless
