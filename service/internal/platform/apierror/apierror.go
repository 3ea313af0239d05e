// Package apierror writes API errors as JSON {code, message, request_id}.
package apierror

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

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

// NotFound is a handler answering 404 with code "not_found".
func NotFound(w http.ResponseWriter, r *http.Request) {
	Write(w, r, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
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
		Write(w, r, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path)
	})
}
