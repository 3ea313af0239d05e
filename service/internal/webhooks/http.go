package webhooks

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
)

// Authenticator wraps a handler that needs the caller's principal (identity.Service.Authenticated).
type Authenticator func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler

// Routes adds the webhook endpoints to mux (owner and admin only):
//
//	POST   /v1/webhooks                  {url, events?} → 201 endpoint with its secret (shown once)
//	GET    /v1/webhooks                  → {webhooks}
//	DELETE /v1/webhooks/{id}             → 204
//	GET    /v1/webhooks/{id}/deliveries  ?limit= → {deliveries}
func (s *Service) Routes(mux *http.ServeMux, auth Authenticator) {
	fail := func(w http.ResponseWriter, r *http.Request, err error) { apierror.WriteError(w, r, s.logger, err) }
	mux.Handle("/v1/webhooks", apierror.Methods(auth(func(w http.ResponseWriter, r *http.Request, p identity.Principal) {
		if r.Method == http.MethodGet {
			eps, err := s.List(r.Context(), p)
			if err != nil {
				fail(w, r, err)
				return
			}
			httpx.WriteJSON(w, http.StatusOK, map[string]any{"webhooks": eps})
			return
		}
		var in NewEndpoint
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				apierror.WriteCode(w, r, apierror.CodeRequestTooLarge, "request body too large")
				return
			}
			apierror.WriteCode(w, r, apierror.CodeInvalidArgument, "invalid JSON body: "+err.Error())
			return
		}
		ep, err := s.Create(r.Context(), p, in)
		if err != nil {
			fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusCreated, ep)
	}), http.MethodGet, http.MethodPost))
	mux.Handle("/v1/webhooks/{id}", apierror.Methods(auth(func(w http.ResponseWriter, r *http.Request, p identity.Principal) {
		if err := s.Delete(r.Context(), p, r.PathValue("id")); err != nil {
			fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), http.MethodDelete))
	mux.Handle("/v1/webhooks/{id}/deliveries", apierror.Methods(auth(func(w http.ResponseWriter, r *http.Request, p identity.Principal) {
		limit := 0
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				apierror.WriteCode(w, r, apierror.CodeInvalidArgument, "limit: want a number")
				return
			}
			limit = n
		}
		ds, err := s.Deliveries(r.Context(), p, r.PathValue("id"), limit)
		if err != nil {
			fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"deliveries": ds})
	}), http.MethodGet))
}

// Paths served by Routes.
var Paths = []string{"/v1/webhooks", "/v1/webhooks/{id}", "/v1/webhooks/{id}/deliveries"}

// UnavailableRoutes answers every webhook endpoint with 503 and message.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	methods := map[string][]string{"/v1/webhooks": {http.MethodGet, http.MethodPost}, "/v1/webhooks/{id}": {http.MethodDelete}, "/v1/webhooks/{id}/deliveries": {http.MethodGet}}
	for _, p := range Paths {
		mux.Handle(p, apierror.Methods(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			apierror.WriteCode(w, r, apierror.CodeUnavailable, message)
		}), methods[p]...))
	}
}
