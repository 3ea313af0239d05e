package search

import (
	"net/http"
	"strconv"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
)

// Authenticator wraps a handler that needs the caller's principal, answering 401 itself
// (identity.Service.Authenticated).
type Authenticator func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler

// Paths served by Routes.
var paths = []string{"/v1/search"}

// Routes adds the search endpoint to mux:
//
//	GET /v1/search   ?q=&cursor=&limit= → {results, next_cursor}
func (s *Service) Routes(mux *http.ServeMux, auth Authenticator) {
	mux.Handle("/v1/search", apierror.Methods(auth(s.handle), http.MethodGet))
}

// UnavailableRoutes answers the search endpoint with 503 and message.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	httpx.Unavailable(mux, paths, message)
}

func (s *Service) handle(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxPageSize {
			apierror.WriteError(w, r, s.logger, invalid("limit must be between 1 and %d", MaxPageSize))
			return
		}
		limit = n
	}
	page, err := s.Search(r.Context(), p, q.Get("q"), q.Get("cursor"), limit)
	if err != nil {
		apierror.WriteError(w, r, s.logger, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}
