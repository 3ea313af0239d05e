// Package apierror writes API errors as JSON {code, message, request_id}.
package apierror

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	bvlog "github.com/bitvault/bitvault/service/internal/platform/log"
)

// Error is the body of every error response of the public API.
type Error struct {
	// Code is a stable, machine-readable snake_case identifier, e.g. "not_found".
	Code string `json:"code"`
	// Message is a human-readable explanation.
	Message string `json:"message"`
	// RequestID is the request's X-Request-Id, for correlation with the logs.
	RequestID string `json:"request_id"`
}

// Write sends status with an Error body; the request id comes from r's context.
func Write(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Error{Code: code, Message: message, RequestID: bvlog.RequestID(r.Context())})
}

// Codes are stable, machine-readable and never repurposed; clients branch on them. Each has
// one HTTP status (see Status).
const (
	CodeInvalidArgument   = "invalid_argument"
	CodeUnauthenticated   = "unauthenticated"
	CodeTokenExpired      = "token_expired"
	CodePermissionDenied  = "permission_denied"
	CodeInsufficientScope = "insufficient_scope"
	CodeNotFound          = "not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeAlreadyExists     = "already_exists"
	CodeRequestTooLarge   = "request_too_large"
	CodeRateLimited       = "rate_limited"
	CodeInternal          = "internal"
	CodeUnavailable       = "unavailable"

	// Files and storage.

	// CodeConflict: the request conflicts with the current state of a resource (moving a
	// folder into itself, restoring into a folder that is in the trash, ...).
	CodeConflict = "conflict"
	// CodeVersionConflict: a commit's base version is not the current one; the upload was
	// kept as a conflicted copy.
	CodeVersionConflict = "version_conflict"
	// CodeUploadIncomplete: the upload's bytes are not in the object store (yet).
	CodeUploadIncomplete = "upload_incomplete"
	// CodeSizeMismatch and CodeHashMismatch: the uploaded bytes are not what was declared;
	// the upload is rejected.
	CodeSizeMismatch = "size_mismatch"
	CodeHashMismatch = "hash_mismatch"
	// CodeQuotaExceeded: the tenant's byte or file quota does not allow the upload.
	CodeQuotaExceeded = "quota_exceeded"
	// CodeFileTooLarge: larger than the largest file accepted.
	CodeFileTooLarge = "file_too_large"

	// Sync and sharing.

	// CodeCursorStale: a sync cursor older than the journal's retained horizon (or ahead of
	// the journal): the client must do a full resync.
	CodeCursorStale = "cursor_stale"
	// CodeGone: the resource existed but is no longer available (an expired or revoked
	// share link).
	CodeGone = "gone"
)

var statuses = map[string]int{
	CodeInvalidArgument:   http.StatusBadRequest,
	CodeUnauthenticated:   http.StatusUnauthorized,
	CodeTokenExpired:      http.StatusUnauthorized,
	CodePermissionDenied:  http.StatusForbidden,
	CodeInsufficientScope: http.StatusForbidden,
	CodeNotFound:          http.StatusNotFound,
	CodeMethodNotAllowed:  http.StatusMethodNotAllowed,
	CodeAlreadyExists:     http.StatusConflict,
	CodeRequestTooLarge:   http.StatusRequestEntityTooLarge,
	CodeRateLimited:       http.StatusTooManyRequests,
	CodeInternal:          http.StatusInternalServerError,
	CodeUnavailable:       http.StatusServiceUnavailable,
	CodeConflict:          http.StatusConflict,
	CodeVersionConflict:   http.StatusConflict,
	CodeUploadIncomplete:  http.StatusConflict,
	CodeSizeMismatch:      http.StatusUnprocessableEntity,
	CodeHashMismatch:      http.StatusUnprocessableEntity,
	CodeQuotaExceeded:     http.StatusRequestEntityTooLarge,
	CodeFileTooLarge:      http.StatusRequestEntityTooLarge,
	CodeCursorStale:       http.StatusConflict,
	CodeGone:              http.StatusGone,
}

// Status is the HTTP status of code; an unknown code is a 500.
func Status(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// WriteCode sends code's status (see Status) with an Error body.
func WriteCode(w http.ResponseWriter, r *http.Request, code, message string) {
	Write(w, r, Status(code), code, message)
}

// Coded is an error with an API code and a message safe to show to the client.
type Coded struct {
	Code    string
	Message string
}

func (e *Coded) Error() string { return e.Code + ": " + e.Message }

// New returns a *Coded error.
func New(code, message string) error { return &Coded{Code: code, Message: message} }

// Retryer is an error that says when the request may be tried again (a rate limit's
// rejection): WriteError answers it with a Retry-After header.
type Retryer interface {
	error
	RetryAfter() time.Duration
}

// WriteError answers with err's code and message when it is (or wraps) a *Coded, and with a
// 500 "internal" otherwise, whose details go to logger (never to the client). An err that is
// (or wraps) a Retryer as well as a *Coded also sets Retry-After, in whole seconds rounded
// up (never on the 500: a failure nobody described says nothing about when to retry).
func WriteError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	if c, ok := errors.AsType[*Coded](err); ok {
		if re, ok := errors.AsType[Retryer](err); ok {
			secs := max(1, (re.RetryAfter()+time.Second-1)/time.Second)
			w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		}
		WriteCode(w, r, c.Code, c.Message)
		return
	}
	if logger != nil {
		logger.ErrorContext(r.Context(), "internal error", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	WriteCode(w, r, CodeInternal, "internal error")
}

// NotFound is a handler answering 404 with code "not_found".
func NotFound(w http.ResponseWriter, r *http.Request) {
	WriteCode(w, r, CodeNotFound, "no route for "+r.Method+" "+r.URL.Path)
}

// Methods wraps h so that it only answers the given methods (HEAD is allowed wherever GET
// is); any other method gets 405 with an Allow header and a JSON error.
func Methods(h http.Handler, methods ...string) http.Handler {
	allowed := slices.Clone(methods)
	if slices.Contains(allowed, http.MethodGet) && !slices.Contains(allowed, http.MethodHead) {
		allowed = append(allowed, http.MethodHead)
	}
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(allowed, r.Method) {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Allow", allow)
		WriteCode(w, r, CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
}
