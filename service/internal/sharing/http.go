package sharing

import (
	"errors"
	"net/http"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
)

// Authenticator wraps a handler that needs the caller's principal, answering 401 itself
// (identity.Service.Authenticated).
type Authenticator func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler

// Paths served by Routes.
var paths = []string{"/v1/nodes/{id}/shares", "/v1/nodes/{id}/shares/{share_id}", "/v1/shares",
	"/v1/nodes/{id}/links", "/v1/nodes/{id}/links/{link_id}", "/v1/links/{token}"}

// Routes adds the sharing endpoints to mux:
//
//	POST   /v1/nodes/{id}/shares               {user_id | email, role} → 201 share (200: role changed)
//	GET    /v1/nodes/{id}/shares               → {shares}
//	DELETE /v1/nodes/{id}/shares/{share_id}    revoke → 204
//	GET    /v1/shares                          shared with me → {shares}
//	POST   /v1/nodes/{id}/links                {password?, expires_at?, download_only?} → 201 {link, token, url}
//	GET    /v1/nodes/{id}/links                → {links}
//	DELETE /v1/nodes/{id}/links/{link_id}      revoke → 204
//	GET    /v1/links/{token}                   no credentials; X-Link-Password → 302 to a presigned GET (429 while rate limited)
//	POST   /v1/links/{token}                   {password} → 302, the same
func (s *Service) Routes(mux *http.ServeMux, auth Authenticator) {
	h := &handlers{s: s}
	route := func(path string, fn func(http.ResponseWriter, *http.Request, identity.Principal), methods ...string) {
		mux.Handle(path, apierror.Methods(auth(fn), methods...))
	}
	route("/v1/nodes/{id}/shares", h.shares, http.MethodGet, http.MethodPost)
	route("/v1/nodes/{id}/shares/{share_id}", h.revokeShare, http.MethodDelete)
	route("/v1/shares", h.sharedWithMe, http.MethodGet)
	route("/v1/nodes/{id}/links", h.links, http.MethodGet, http.MethodPost)
	route("/v1/nodes/{id}/links/{link_id}", h.revokeLink, http.MethodDelete)
	mux.Handle("/v1/links/{token}", apierror.Methods(http.HandlerFunc(h.resolve), http.MethodGet, http.MethodPost))
}

// UnavailableRoutes answers every sharing endpoint with 503 and message.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	httpx.Unavailable(mux, paths, message)
}

type handlers struct{ s *Service }

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	apierror.WriteError(w, r, h.s.logger, err)
}

type sharesResponse struct {
	Shares []Share `json:"shares"`
}

func (h *handlers) shares(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		list, err := h.s.ListShares(r.Context(), p, r.PathValue("id"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, sharesResponse{Shares: list})
		return
	}
	var in NewShare
	if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
		h.fail(w, r, err)
		return
	}
	sh, created, err := h.s.CreateShare(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, sh)
}

func (h *handlers) revokeShare(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if err := h.s.RevokeShare(r.Context(), p, r.PathValue("id"), r.PathValue("share_id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type sharedWithMeResponse struct {
	Shares []SharedNode `json:"shares"`
}

func (h *handlers) sharedWithMe(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	list, err := h.s.SharedWithMe(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, sharedWithMeResponse{Shares: list})
}

type linksResponse struct {
	Links []Link `json:"links"`
}

type createLinkResponse struct {
	Link Link `json:"link"`
	// Token is shown only in this response.
	Token string `json:"token"`
	// URL is the link's path on this API: /v1/links/{token}.
	URL string `json:"url"`
}

func (h *handlers) links(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		list, err := h.s.ListLinks(r.Context(), p, r.PathValue("id"))
		if err != nil {
			h.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, linksResponse{Links: list})
		return
	}
	var in NewLink
	if err := httpx.Decode(w, r, &in, httpx.Optional|httpx.Strict); err != nil {
		h.fail(w, r, err)
		return
	}
	l, token, err := h.s.CreateLink(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, createLinkResponse{Link: l, Token: token, URL: "/v1/links/" + token})
}

func (h *handlers) revokeLink(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if err := h.s.RevokeLink(r.Context(), p, r.PathValue("id"), r.PathValue("link_id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type linkPasswordRequest struct {
	Password string `json:"password"`
}

// downloadBody accompanies the redirect, for clients that do not follow it.
type downloadBody struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

// resolve serves a public link. The token is a credential: it is taken out of the request's
// URL before anything is logged (the access log reads the same URL after the handler).
func (h *handlers) resolve(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	r.URL.Path, r.URL.RawPath = "/v1/links/"+redactToken(token), ""
	w.Header().Set("Referrer-Policy", "no-referrer")
	password := r.Header.Get(HeaderLinkPassword)
	if r.Method == http.MethodPost {
		var in linkPasswordRequest
		if err := httpx.Decode(w, r, &in, httpx.Optional|httpx.Strict); err != nil {
			h.fail(w, r, err)
			return
		}
		if in.Password != "" {
			password = in.Password
		}
	}
	pr, err := h.s.ResolveLink(r.Context(), token, password, h.s.cfg.Limits.ClientIP(r))
	if err != nil {
		if errors.Is(err, ErrPasswordRequired) || errors.Is(err, ErrWrongPassword) {
			w.Header().Set("WWW-Authenticate", `LinkPassword realm="bitvault-link"`)
		}
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", pr.URL)
	httpx.WriteJSON(w, http.StatusFound, downloadBody{URL: pr.URL, ExpiresAt: pr.ExpiresAt.Format(time.RFC3339)})
}
