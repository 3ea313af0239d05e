package admin

import (
	"encoding/json"
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
var Paths = []string{"/v1/admin/quota", "/v1/admin/usage", "/v1/admin/flags", "/v1/admin/users",
	"/v1/admin/users/{id}", "/v1/admin/audit"}

// Routes adds the admin endpoints to mux (owner and admin only):
//
//	GET   /v1/admin/quota        → quota
//	PUT   /v1/admin/quota        {bytes_limit, files_limit} (null: the default) → quota
//	GET   /v1/admin/usage        → {bytes_stored, files, uploads_this_month, month, as_of}
//	GET   /v1/admin/flags        → {flags: {key: value}}
//	PUT   /v1/admin/flags        {flags: {key: value | null}} → {flags}
//	GET   /v1/admin/users        → {users}
//	POST  /v1/admin/users        {email, password, display_name?, role} → 201 user
//	PATCH /v1/admin/users/{id}   {role?, status?: active|disabled} → user
//	GET   /v1/admin/audit        ?cursor=&limit= → {entries, next_cursor}
func (s *Service) Routes(mux *http.ServeMux, auth Authenticator) {
	h := &handlers{s: s}
	route := func(path string, fn func(http.ResponseWriter, *http.Request, identity.Principal), methods ...string) {
		mux.Handle(path, apierror.Methods(auth(fn), methods...))
	}
	route("/v1/admin/quota", h.quota, http.MethodGet, http.MethodPut)
	route("/v1/admin/usage", h.usage, http.MethodGet)
	route("/v1/admin/flags", h.flags, http.MethodGet, http.MethodPut)
	route("/v1/admin/users", h.users, http.MethodGet, http.MethodPost)
	route("/v1/admin/users/{id}", h.user, http.MethodPatch)
	route("/v1/admin/audit", h.audit, http.MethodGet)
}

// UnavailableRoutes answers every admin endpoint with 503 and message.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	httpx.Unavailable(mux, Paths, message)
}

type handlers struct{ s *Service }

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	apierror.WriteError(w, r, h.s.logger, err)
}

func (h *handlers) quota(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var q Quota
	var err error
	if r.Method == http.MethodPut {
		// Authorize before reading the body: a non-admin learns nothing about its validation.
		if err := h.s.authorize(p); err != nil {
			h.fail(w, r, err)
			return
		}
		var in QuotaUpdate
		if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
			h.fail(w, r, err)
			return
		}
		q, err = h.s.SetQuota(r.Context(), p, in)
	} else {
		q, err = h.s.GetQuota(r.Context(), p)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, q)
}

func (h *handlers) usage(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	u, err := h.s.GetUsage(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

type flagsBody struct {
	Flags map[string]json.RawMessage `json:"flags"`
}

func (h *handlers) flags(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var out map[string]json.RawMessage
	var err error
	if r.Method == http.MethodPut {
		if err := h.s.authorize(p); err != nil {
			h.fail(w, r, err)
			return
		}
		var in flagsBody
		if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
			h.fail(w, r, err)
			return
		}
		out, err = h.s.SetFlags(r.Context(), p, in.Flags)
	} else {
		out, err = h.s.ListFlags(r.Context(), p)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, flagsBody{Flags: out})
}

type usersBody struct {
	Users []User `json:"users"`
}

func (h *handlers) users(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodPost {
		if err := h.s.authorize(p); err != nil {
			h.fail(w, r, err)
			return
		}
		var in identity.NewUser
		if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
			h.fail(w, r, err)
			return
		}
		u, err := h.s.AddUser(r.Context(), p, in)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusCreated, u)
		return
	}
	us, err := h.s.ListUsers(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, usersBody{Users: us})
}

func (h *handlers) user(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if err := h.s.authorize(p); err != nil {
		h.fail(w, r, err)
		return
	}
	var in UserUpdate
	if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.s.UpdateUser(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (h *handlers) audit(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAuditPage {
			h.fail(w, r, invalid("limit must be between 1 and %d", MaxAuditPage))
			return
		}
		limit = n
	}
	page, err := h.s.Audit(r.Context(), p, q.Get("cursor"), limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}
