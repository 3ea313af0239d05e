// Package httpx holds the JSON plumbing the API modules share: writing a JSON answer,
// decoding a JSON request body, and answering a module's endpoints with 503 when it is not
// available.
package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
)

// MaxBody bounds request bodies (file bytes never come through the API).
const MaxBody = 64 << 10

// WriteJSON sends status with v as a JSON body, never cached and never sniffed.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// DecodeFlags change how Decode reads a body.
type DecodeFlags uint8

const (
	// Strict rejects fields that v does not have.
	Strict DecodeFlags = 1 << iota
	// Optional accepts an empty body (v is left as it is).
	Optional
)

// Decode reads a JSON object body of at most MaxBody bytes into v. A body too large is
// request_too_large; anything else that is not a single JSON object is invalid_argument.
func Decode(w http.ResponseWriter, r *http.Request, v any, flags DecodeFlags) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	if flags&Strict != 0 {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return apierror.New(apierror.CodeRequestTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBody))
		}
		if errors.Is(err, io.EOF) {
			if flags&Optional != 0 {
				return nil
			}
			return invalid("request body: want a JSON object")
		}
		return invalid("request body: %v", err)
	}
	if dec.More() {
		return invalid("request body: want a single JSON object")
	}
	return nil
}

func invalid(format string, args ...any) error {
	return apierror.New(apierror.CodeInvalidArgument, fmt.Sprintf(format, args...))
}

// Unavailable answers every path of paths with 503 unavailable and message, for a module
// that cannot run (no database, no object store).
func Unavailable(mux *http.ServeMux, paths []string, message string) {
	for _, p := range paths {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			apierror.WriteCode(w, r, apierror.CodeUnavailable, message)
		})
	}
}
