// Package sigstoretest runs, on 127.0.0.1, the three services keyless signing talks to in
// GitHub Actions, speaking their real HTTP APIs, so the real clients (attest/sign/keyless,
// Rekor's own Go client) run unchanged in tests:
//
//   - the Actions OIDC token service (GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=…, bearer
//     ACTIONS_ID_TOKEN_REQUEST_TOKEN → {"value": JWT}), issuing ES256 tokens with GitHub's
//     claims (iss https://token.actions.githubusercontent.com, sub repo:…:ref:…,
//     job_workflow_ref, repository, ref, sha, run_id …);
//   - Fulcio (POST /api/v1/signingCert): checks the token's signature, audience and expiry and
//     the proof of possession, then issues a 10-minute certificate from a CA made with
//     sigstore-go's pkg/testing/ca (root + Fulcio intermediate), with the URI SAN
//     https://github.com/<job_workflow_ref> and the GitHub extensions rendered by Fulcio's own
//     certificate package (issuer 1.3.6.1.4.1.57264.1.1/.8, source repository, ref, digest,
//     build signer, run invocation …), no SCT;
//   - Rekor v1 (POST /api/v1/log/entries): parses and validates the proposed entry with
//     Rekor's own types (hashedrekord, dsse: the signature must verify), canonicalises it,
//     and returns it with an index, an integrated time and a signed entry timestamp.
//
// TrustedRoot is the matching trusted_root.json (Fulcio CA + Rekor key), what `bvrelease
// verify --trusted-root` and `cosign verify --trusted-root` take. Fail makes a service answer
// an error status for its next requests, to test retries and outages.
package sigstoretest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/go-openapi/runtime"
	fulcioapi "github.com/sigstore/fulcio/pkg/api"
	"github.com/sigstore/fulcio/pkg/certificate"
	"github.com/sigstore/rekor/pkg/generated/models"
	"github.com/sigstore/rekor/pkg/types"
	_ "github.com/sigstore/rekor/pkg/types/dsse/v0.0.1"
	_ "github.com/sigstore/rekor/pkg/types/hashedrekord/v0.0.1"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/transparency-dev/merkle/rfc6962"
)

// GitHubIssuer is the issuer of GitHub Actions OIDC tokens.
const GitHubIssuer = "https://token.actions.githubusercontent.com"

// Workflow is what the token says about the run: the claims GitHub Actions puts in it.
type Workflow struct {
	Repository   string // bitvault/bitvault
	Ref          string // refs/tags/v1.2.3
	SHA          string // the commit
	WorkflowPath string // .github/workflows/release.yml
	EventName    string // push
	RunID        string
}

// Identity is the certificate identity Fulcio gives this workflow.
func (w Workflow) Identity() string {
	return "https://github.com/" + w.Repository + "/" + w.WorkflowPath + "@" + w.Ref
}

// Service names one of the servers, for Fail.
type Service string

const (
	Token  Service = "token"
	Fulcio Service = "fulcio"
	Rekor  Service = "rekor"
)

// Sigstore is the running set of services.
type Sigstore struct {
	// URLs: TokenRequestURL is ACTIONS_ID_TOKEN_REQUEST_URL (it already has a query, as
	// GitHub's does); RequestToken is ACTIONS_ID_TOKEN_REQUEST_TOKEN.
	TokenRequestURL, RequestToken string
	FulcioURL, RekorURL           string

	srv        *httptest.Server
	oidcKey    *ecdsa.PrivateKey
	rootCert   *x509.Certificate
	interCert  *x509.Certificate
	interKey   *ecdsa.PrivateKey
	rekorKey   *ecdsa.PrivateKey
	rekorLogID string
	created    time.Time

	mu       sync.Mutex
	workflow Workflow
	failures map[Service][]int // status codes for the next requests
	requests map[Service]int
	entries  map[string][]byte // uuid → canonical body
	index    int64
}

// Start runs the services until Close.
func Start(w Workflow) (*Sigstore, error) {
	s := &Sigstore{workflow: w, failures: map[Service][]int{}, requests: map[Service]int{}, entries: map[string][]byte{}, created: time.Now()}
	var err error
	if s.oidcKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	if s.rekorKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return nil, err
	}
	var rootKey *ecdsa.PrivateKey
	if s.rootCert, rootKey, err = ca.GenerateRootCa(); err != nil {
		return nil, err
	}
	if s.interCert, s.interKey, err = ca.GenerateFulcioIntermediate(s.rootCert, rootKey); err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(s.rekorKey.Public())
	if err != nil {
		return nil, err
	}
	id := sha256.Sum256(pub)
	s.rekorLogID = hex.EncodeToString(id[:])
	s.RequestToken = randomHex(16)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", s.guard(Token, s.token))
	mux.HandleFunc("POST /fulcio/api/v1/signingCert", s.guard(Fulcio, s.signingCert))
	mux.HandleFunc("POST /rekor/api/v1/log/entries", s.guard(Rekor, s.createEntry))
	s.srv = httptest.NewServer(mux)
	s.TokenRequestURL = s.srv.URL + "/token?api-version=2.0"
	s.FulcioURL = s.srv.URL + "/fulcio"
	s.RekorURL = s.srv.URL + "/rekor"
	return s, nil
}

// New starts the services for a test and stops them at its end.
func New(t testing.TB, w Workflow) *Sigstore {
	t.Helper()
	s, err := Start(w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the services.
func (s *Sigstore) Close() { s.srv.Close() }

// SetWorkflow changes what later tokens say.
func (s *Sigstore) SetWorkflow(w Workflow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workflow = w
}

// Fail makes svc answer its next len(statuses) requests with these HTTP statuses.
func (s *Sigstore) Fail(svc Service, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[svc] = append(s.failures[svc], statuses...)
}

// Requests is how many requests svc has received (failed ones included).
func (s *Sigstore) Requests(svc Service) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[svc]
}

// Entries is how many entries the log holds.
func (s *Sigstore) Entries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Env sets the two variables GitHub Actions gives a job with id-token: write.
func (s *Sigstore) Env(t testing.TB) {
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", s.TokenRequestURL)
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", s.RequestToken)
}

// RootPEM is the CA's root certificate (what `cosign verify --ca-roots` and Kyverno's
// keyless `roots:` take).
func (s *Sigstore) RootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.rootCert.Raw})
}

// ChainPEM is intermediate then root.
func (s *Sigstore) ChainPEM() []byte {
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.interCert.Raw}), s.RootPEM()...)
}

// RekorPublicKeyPEM is the log's key (SIGSTORE_REKOR_PUBLIC_KEY, Kyverno's rekor.pubkey).
func (s *Sigstore) RekorPublicKeyPEM() []byte {
	b, err := cryptoutils.MarshalPublicKeyToPEM(s.rekorKey.Public())
	if err != nil {
		panic(err)
	}
	return b
}

// TrustedRoot is the trusted_root.json for these services.
func (s *Sigstore) TrustedRoot() []byte {
	start := s.created.Add(-time.Hour)
	cas := []root.CertificateAuthority{&root.FulcioCertificateAuthority{
		Root: s.rootCert, Intermediates: []*x509.Certificate{s.interCert},
		ValidityPeriodStart: start, URI: s.FulcioURL,
	}}
	logID, _ := hex.DecodeString(s.rekorLogID)
	logs := map[string]*root.TransparencyLog{s.rekorLogID: {
		BaseURL: s.RekorURL, ID: logID, ValidityPeriodStart: start,
		HashFunc: crypto.SHA256, PublicKey: s.rekorKey.Public(), SignatureHashFunc: crypto.SHA256,
	}}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, cas, map[string]*root.TransparencyLog{}, nil, logs)
	if err != nil {
		panic(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return b
}

// guard counts requests and serves injected failures.
func (s *Sigstore) guard(svc Service, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[svc]++
		var status int
		if f := s.failures[svc]; len(f) > 0 {
			status, s.failures[svc] = f[0], f[1:]
		}
		s.mu.Unlock()
		if status != 0 {
			http.Error(w, fmt.Sprintf("%s: injected failure", svc), status)
			return
		}
		h(w, r)
	}
}

// token serves the Actions token service.
func (s *Sigstore) token(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "bearer "+s.RequestToken {
		http.Error(w, "bad request token", http.StatusUnauthorized)
		return
	}
	aud := r.URL.Query().Get("audience")
	if aud == "" {
		aud = "https://github.com/" + s.workflow.Repository
	}
	s.mu.Lock()
	wf := s.workflow
	s.mu.Unlock()
	owner, _, _ := strings.Cut(wf.Repository, "/")
	now := time.Now()
	claims := map[string]any{
		"iss": GitHubIssuer, "aud": aud, "sub": "repo:" + wf.Repository + ":ref:" + wf.Ref,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": randomHex(8),
		"repository": wf.Repository, "repository_owner": owner, "repository_id": "100", "repository_owner_id": "200",
		"repository_visibility": "public", "ref": wf.Ref, "ref_type": refType(wf.Ref), "sha": wf.SHA,
		"workflow": "release", "workflow_ref": wf.Repository + "/" + wf.WorkflowPath + "@" + wf.Ref, "workflow_sha": wf.SHA,
		"job_workflow_ref": wf.Repository + "/" + wf.WorkflowPath + "@" + wf.Ref, "job_workflow_sha": wf.SHA,
		"event_name": wf.EventName, "run_id": wf.RunID, "run_attempt": "1", "runner_environment": "github-hosted",
	}
	jwt, err := signJWT(s.oidcKey, claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"value": jwt})
}

func refType(ref string) string {
	if strings.HasPrefix(ref, "refs/tags/") {
		return "tag"
	}
	return "branch"
}

// signingCert serves Fulcio's legacy API.
func (s *Sigstore) signingCert(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		http.Error(w, "missing bearer token", http.StatusUnauthorized)
		return
	}
	claims, err := verifyJWT(&s.oidcKey.PublicKey, token)
	if err != nil {
		http.Error(w, "invalid OIDC token: "+err.Error(), http.StatusUnauthorized)
		return
	}
	if claims["iss"] != GitHubIssuer || claims["aud"] != "sigstore" {
		http.Error(w, fmt.Sprintf("token issuer %v / audience %v not accepted", claims["iss"], claims["aud"]), http.StatusUnauthorized)
		return
	}
	var req fulcioapi.CertificateRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(req.PublicKey.Content)
	if err != nil {
		http.Error(w, "public key: "+err.Error(), http.StatusBadRequest)
		return
	}
	sub, _ := claims["sub"].(string)
	digest := sha256.Sum256([]byte(sub))
	if ek, ok := pub.(*ecdsa.PublicKey); !ok || !ecdsa.VerifyASN1(ek, digest[:], req.SignedEmailAddress) {
		http.Error(w, "proof of possession does not verify", http.StatusBadRequest)
		return
	}
	str := func(k string) string { v, _ := claims[k].(string); return v }
	gh := "https://github.com/"
	ext := certificate.Extensions{
		Issuer:                              GitHubIssuer,
		GithubWorkflowTrigger:               str("event_name"),
		GithubWorkflowSHA:                   str("sha"),
		GithubWorkflowName:                  str("workflow"),
		GithubWorkflowRepository:            str("repository"),
		GithubWorkflowRef:                   str("ref"),
		BuildSignerURI:                      gh + str("job_workflow_ref"),
		BuildSignerDigest:                   str("job_workflow_sha"),
		RunnerEnvironment:                   str("runner_environment"),
		SourceRepositoryURI:                 gh + str("repository"),
		SourceRepositoryDigest:              str("sha"),
		SourceRepositoryRef:                 str("ref"),
		SourceRepositoryIdentifier:          str("repository_id"),
		SourceRepositoryOwnerURI:            gh + str("repository_owner"),
		SourceRepositoryOwnerIdentifier:     str("repository_owner_id"),
		BuildConfigURI:                      gh + str("workflow_ref"),
		BuildConfigDigest:                   str("workflow_sha"),
		BuildTrigger:                        str("event_name"),
		RunInvocationURI:                    gh + str("repository") + "/actions/runs/" + str("run_id") + "/attempts/" + str("run_attempt"),
		SourceRepositoryVisibilityAtSigning: str("repository_visibility"),
	}
	exts, err := ext.Render()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	san, err := url.Parse(gh + str("job_workflow_ref"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now().Truncate(time.Second)
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	tmpl := &x509.Certificate{
		SerialNumber: serial, NotBefore: now, NotAfter: now.Add(10 * time.Minute),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		URIs: []*url.URL{san}, ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.interCert, pub, s.interKey)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.WriteHeader(http.StatusCreated)
	w.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	w.Write(s.ChainPEM())
}

// createEntry serves Rekor's POST /api/v1/log/entries.
func (s *Sigstore) createEntry(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	pe, err := models.UnmarshalProposedEntry(r.Body, runtime.JSONConsumer())
	if err != nil {
		rekorError(w, http.StatusBadRequest, err)
		return
	}
	entry, err := types.UnmarshalEntry(pe) // validates: the signature must verify
	if err != nil {
		rekorError(w, http.StatusBadRequest, err)
		return
	}
	body, err := entry.Canonicalize(ctx)
	if err != nil {
		rekorError(w, http.StatusBadRequest, err)
		return
	}
	uuid := hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(body))
	s.mu.Lock()
	if _, dup := s.entries[uuid]; dup {
		s.mu.Unlock()
		w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
		rekorError(w, http.StatusConflict, errors.New("an equivalent entry already exists in the transparency log"))
		return
	}
	s.entries[uuid] = body
	idx := s.index
	s.index++
	s.mu.Unlock()

	b64 := base64.StdEncoding.EncodeToString(body)
	integrated := time.Now().Unix()
	set, err := s.signSET(b64, integrated, idx)
	if err != nil {
		rekorError(w, http.StatusInternalServerError, err)
		return
	}
	logID := s.rekorLogID
	resp := models.LogEntry{uuid: models.LogEntryAnon{
		Body: b64, IntegratedTime: &integrated, LogID: &logID, LogIndex: &idx,
		Verification: &models.LogEntryAnonVerification{SignedEntryTimestamp: set},
	}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Location", "/api/v1/log/entries/"+uuid)
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(resp)
}

// signSET signs the canonical JSON of {body, integratedTime, logID, logIndex}, as Rekor does.
func (s *Sigstore) signSET(body string, integrated, idx int64) ([]byte, error) {
	raw, err := json.Marshal(map[string]any{"body": body, "integratedTime": integrated, "logID": s.rekorLogID, "logIndex": idx})
	if err != nil {
		return nil, err
	}
	canon, err := jsoncanonicalizer.Transform(raw)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(canon)
	return ecdsa.SignASN1(rand.Reader, s.rekorKey, h[:])
}

func rekorError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"code": code, "message": err.Error()})
}

// signJWT makes an ES256 JWT.
func signJWT(k *ecdsa.PrivateKey, claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": "sigstoretest"})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	h := sha256.Sum256([]byte(signing))
	r, sv, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}

// verifyJWT checks an ES256 JWT's signature and time claims and returns its claims.
func verifyJWT(k *ecdsa.PublicKey, token string) (map[string]any, error) {
	enc := base64.RawURLEncoding
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a JWT")
	}
	sig, err := enc.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errors.New("bad signature encoding")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(k, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, errors.New("signature does not verify")
	}
	raw, err := enc.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	claims := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&claims); err != nil {
		return nil, err
	}
	exp, ok := claims["exp"].(json.Number)
	if !ok {
		return nil, errors.New("token has no expiry")
	}
	if e, _ := exp.Int64(); time.Now().Unix() > e {
		return nil, errors.New("token expired")
	}
	return claims, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
