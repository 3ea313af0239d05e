// Package client is a typed Go client for BitVault's HTTP API (/v1), as described by
// service/api/openapi.yaml.
//
// A Client talks to one server (its base URL) as one caller: a session (an access token and
// its refresh token, from Login) or an API token. With a session, a request answered 401
// (the access token expired or was revoked) refreshes the session once, rotating the refresh
// token, and is sent again; OnSession is told the new tokens so that they can be persisted.
// An access token known to be expired is refreshed before the request is sent. Processes
// sharing one session (the CLI's credentials file) coordinate through a SessionStore: a
// refresh token is spent by its first use, and using it twice revokes the session.
//
// Errors answered by the server are *Error, decoded from the API's error body
// {code, message, request_id}.
//
// File bytes never pass through the API: uploads PUT to a presigned URL (Upload does the
// whole protocol: hash, declare, PUT, commit) and downloads GET the presigned URL the content
// endpoint redirects to. Those requests go to the object store without the caller's
// credentials.
//
// The package imports nothing from the server: it is what any client of the API needs, and
// keeps the bitvault CLI small and free of server dependencies.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// DefaultTimeout bounds an API call (not the transfers to and from the object store, nor a
// commit, which waits for the server to read the whole upload back).
const DefaultTimeout = 60 * time.Second

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// maxResponseBody bounds how much of a JSON answer is read.
const maxResponseBody = 64 << 20

// Session is an interactive session's tokens.
type Session struct {
	AccessToken      string    `json:"access_token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

// Options configure a Client.
type Options struct {
	// HTTPClient sends the requests (nil: a client with DefaultTimeout for API calls and no
	// overall timeout for transfers). Redirects are never followed through it.
	HTTPClient *http.Client
	// UserAgent is sent with every API request.
	UserAgent string
	// APIToken, if set, authenticates every request (it takes precedence over Session).
	APIToken string
	// Session, if set, authenticates requests with its access token and is refreshed with
	// its refresh token.
	Session *Session
	// Store, if set, persists the session's rotations and serializes them with other
	// processes sharing it.
	Store SessionStore
}

// SessionStore keeps a session shared by several clients (processes): refreshes happen under
// its lock, and a client adopts the tokens another one rotated meanwhile instead of spending
// the refresh token a second time (which would revoke the session).
type SessionStore interface {
	// Lock takes the store's lock and returns the stored session (nil if none); unlock
	// releases the lock.
	Lock(ctx context.Context) (stored *Session, unlock func(), err error)
	// Save persists rotated tokens; it is called under the lock.
	Save(Session) error
}

// Client is a BitVault API client; it is safe for concurrent use.
type Client struct {
	base      *url.URL
	api       *http.Client // API calls: no redirects followed
	long      *http.Client // API calls that may take long (commit verifies the bytes): no timeout
	transfer  *http.Client // presigned URLs: no overall timeout
	userAgent string
	apiToken  string
	store     SessionStore

	mu      sync.Mutex
	session *Session
	now     func() time.Time
}

// New returns a client of the server at baseURL (e.g. https://vault.example.com).
func New(baseURL string, o Options) (*Client, error) {
	u, err := ParseServerURL(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{base: u, userAgent: o.UserAgent, apiToken: o.APIToken, store: o.Store, now: time.Now}
	if o.Session != nil {
		s := *o.Session
		c.session = &s
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if o.HTTPClient != nil {
		api := *o.HTTPClient
		api.CheckRedirect = noRedirect
		c.api, c.long = &api, &api
		c.transfer = o.HTTPClient
	} else {
		c.api = &http.Client{Timeout: DefaultTimeout, CheckRedirect: noRedirect}
		c.long = &http.Client{CheckRedirect: noRedirect}
		c.transfer = &http.Client{}
	}
	if c.userAgent == "" {
		c.userAgent = "bitvault-go-client"
	}
	return c, nil
}

// ParseServerURL checks a server URL: absolute http or https, no query or fragment. A
// trailing slash is dropped.
func ParseServerURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://host[:port]", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("server URL %q: no query, fragment or user info", s)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// BaseURL is the server's URL.
func (c *Client) BaseURL() string { return c.base.String() }

// Session returns the current session tokens (rotated by refreshes), or nil.
func (c *Client) Session() *Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil {
		return nil
	}
	s := *c.session
	return &s
}

// SetSession replaces the session (and drops the API token).
func (c *Client) SetSession(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.apiToken = ""
	if s == nil {
		c.session = nil
		return
	}
	cp := *s
	c.session = &cp
}

// Error is an error answered by the server.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int `json:"-"`
	// Code is the API's machine-readable code (e.g. "not_found"); empty when the answer had
	// no error body.
	Code string `json:"code"`
	// Message is the server's human-readable explanation.
	Message string `json:"message"`
	// RequestID identifies the request in the server's logs.
	RequestID string `json:"request_id"`
	// Conflict is the conflicted copy written by a commit answered 409 version_conflict.
	Conflict *CommitResult `json:"conflict,omitempty"`
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	detail := e.Code
	if detail == "" {
		detail = fmt.Sprintf("HTTP %d", e.StatusCode)
	}
	if e.RequestID != "" {
		return fmt.Sprintf("%s (%s, request id %s)", msg, detail, e.RequestID)
	}
	return fmt.Sprintf("%s (%s)", msg, detail)
}

// Error codes clients branch on (see the API's error body).
const (
	CodeInvalidArgument   = "invalid_argument"
	CodeUnauthenticated   = "unauthenticated"
	CodeTokenExpired      = "token_expired"
	CodePermissionDenied  = "permission_denied"
	CodeInsufficientScope = "insufficient_scope"
	CodeNotFound          = "not_found"
	CodeAlreadyExists     = "already_exists"
	CodeConflict          = "conflict"
	CodeVersionConflict   = "version_conflict"
	CodeUploadIncomplete  = "upload_incomplete"
	CodeSizeMismatch      = "size_mismatch"
	CodeHashMismatch      = "hash_mismatch"
	CodeQuotaExceeded     = "quota_exceeded"
	CodeFileTooLarge      = "file_too_large"
	CodeUnavailable       = "unavailable"
	// CodeRateLimited: too many failed password attempts (login, link password); the
	// message says how long to wait (the Retry-After header too).
	CodeRateLimited = "rate_limited"
)

// IsCode reports whether err is (or wraps) an *Error with code.
func IsCode(err error, code string) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.Code == code
}

// IsUnauthenticated reports whether err is (or wraps) a 401: credentials missing, invalid,
// expired beyond refresh, or revoked.
func IsUnauthenticated(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.StatusCode == http.StatusUnauthorized
}

// IsNotFound reports whether err is (or wraps) a 404.
func IsNotFound(err error) bool {
	e, ok := errors.AsType[*Error](err)
	return ok && e.StatusCode == http.StatusNotFound
}

// decodeError builds the *Error of a non-2xx answer.
func decodeError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{StatusCode: resp.StatusCode}
	if err := json.Unmarshal(body, e); err != nil || e.Code == "" {
		e.Code, e.Message, e.Conflict = "", "", nil
		if s := strings.TrimSpace(string(body)); s != "" && len(s) < 512 && !strings.ContainsAny(s, "<\x00") {
			e.Message = fmt.Sprintf("%s: %s", http.StatusText(resp.StatusCode), s)
		}
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-Id")
	}
	return e
}

// request describes one API call.
type request struct {
	method string
	path   string // below the base URL, e.g. /v1/nodes
	query  url.Values
	body   any // marshalled as JSON unless nil
	// auth: send the caller's credentials (and refresh on 401).
	auth bool
	// bearer, if set, is sent instead of the caller's credentials (no refresh).
	bearer string
	// want is the expected status (0: any 2xx).
	want int
	// long: no timeout (the caller's context bounds it).
	long bool
}

func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// do sends r and decodes a JSON answer into out (if not nil). It returns the response with
// its body closed, for headers.
func (c *Client) do(ctx context.Context, r request, out any) (*http.Response, error) {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		token, session := r.bearer, false
		if r.auth && token == "" {
			var err error
			if token, session, err = c.credentials(ctx); err != nil {
				return nil, err
			}
		}
		var body io.Reader
		if payload != nil {
			body = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, c.url(r.path, r.query), body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		hc := c.api
		if r.long {
			hc = c.long
		}
		resp, err := hc.Do(req)
		if err != nil {
			if ue, ok := errors.AsType[*url.Error](err); ok {
				err = fmt.Errorf("cannot reach %s (%s %s): %w", c.base.Host, r.method, r.path, ue.Err)
			}
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && session && attempt == 0 {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
			if err := c.refresh(ctx, token); err != nil {
				return nil, err
			}
			continue
		}
		defer resp.Body.Close()
		ok := resp.StatusCode >= 200 && resp.StatusCode < 300
		if r.want != 0 {
			ok = resp.StatusCode == r.want
		}
		if !ok {
			if resp.StatusCode >= 200 && resp.StatusCode < 400 {
				return resp, fmt.Errorf("%s %s: unexpected status %d", r.method, r.path, resp.StatusCode)
			}
			return resp, decodeError(resp)
		}
		if out != nil {
			if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
				return resp, fmt.Errorf("%s %s: decode answer: %w", r.method, r.path, err)
			}
		}
		return resp, nil
	}
}

// expirySkew refreshes an access token this long before it expires.
const expirySkew = 30 * time.Second

// credentials returns the bearer token to send, and whether it is a session's (refreshable);
// an access token about to expire is refreshed first.
func (c *Client) credentials(ctx context.Context) (string, bool, error) {
	c.mu.Lock()
	apiToken, s := c.apiToken, c.session
	c.mu.Unlock()
	switch {
	case apiToken != "":
		return apiToken, false, nil
	case s == nil:
		return "", false, nil
	}
	if s.AccessToken == "" || c.expired(s) {
		if err := c.refresh(ctx, s.AccessToken); err != nil {
			return "", false, err
		}
		c.mu.Lock()
		s = c.session
		c.mu.Unlock()
		if s == nil {
			return "", false, nil
		}
	}
	return s.AccessToken, true, nil
}

// refresh rotates the session's tokens, unless another call (or, through the store, another
// process) did it since stale was sent.
func (c *Client) refresh(ctx context.Context, stale string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.session == nil {
		return &Error{StatusCode: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "not logged in"}
	}
	if c.session.AccessToken != stale && c.session.AccessToken != "" && !c.expired(c.session) {
		return nil // refreshed meanwhile
	}
	if c.store != nil {
		stored, unlock, err := c.store.Lock(ctx)
		if err != nil {
			return fmt.Errorf("session store: %w", err)
		}
		defer unlock()
		if stored != nil && stored.RefreshToken != "" && stored.RefreshToken != c.session.RefreshToken {
			// Another process rotated the tokens: adopt them, refreshing only if they are
			// stale too.
			cp := *stored
			c.session = &cp
			if cp.AccessToken != stale && cp.AccessToken != "" && !c.expired(&cp) {
				return nil
			}
		}
	}
	if c.session.RefreshToken == "" {
		return &Error{StatusCode: http.StatusUnauthorized, Code: CodeUnauthenticated, Message: "session expired: log in again"}
	}
	var t Tokens
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/auth/refresh", body: refreshRequest{RefreshToken: c.session.RefreshToken}}, &t)
	if err != nil {
		return err
	}
	s := t.Session()
	c.session = &s
	if c.store != nil {
		if err := c.store.Save(s); err != nil {
			return fmt.Errorf("session store: save the rotated tokens: %w", err)
		}
	}
	return nil
}

// expired reports whether s's access token is expired or about to.
func (c *Client) expired(s *Session) bool {
	return !s.ExpiresAt.IsZero() && c.now().Add(expirySkew).After(s.ExpiresAt)
}

// pathID escapes an id for a URL path.
func pathID(id string) string { return url.PathEscape(id) }
