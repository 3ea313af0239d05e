package files

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
	bvlog "github.com/bitvault/bitvault/service/internal/platform/log"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Authenticator wraps a handler that needs the caller's principal, answering 401 itself
// (identity.Service.Authenticated).
type Authenticator func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler

// Paths served by Routes.
var paths = []string{"/v1/files", "/v1/files/commit", "/v1/files/{id}/content", "/v1/folders", "/v1/nodes",
	"/v1/nodes/{id}", "/v1/nodes/{id}/move", "/v1/nodes/{id}/copy", "/v1/nodes/{id}/versions",
	"/v1/nodes/{id}/trash", "/v1/nodes/{id}/restore", "/v1/trash", "/v1/uploads/{id}", "/v1/uploads/{id}/parts"}

// Routes adds the files endpoints to mux:
//
//	POST   /v1/files                 {path, size, blake3, sha256?} → 201 upload: id and presigned PUT
//	POST   /v1/files/commit          {upload_id, base_version?} → 201 {node, version}; 409 version_conflict
//	GET    /v1/uploads/{id}          upload with its stored parts (resuming a multipart upload)
//	DELETE /v1/uploads/{id}          cancel a pending upload (idempotent) → 204
//	POST   /v1/uploads/{id}/parts    {part_numbers} → {parts: presigned part uploads}
//	GET    /v1/files/{id}/content    ?version= → 302 to a presigned GET
//	POST   /v1/folders               {path} → 201 node
//	GET    /v1/nodes                 ?parent=&cursor=&limit= → {nodes, next_cursor}
//	GET    /v1/nodes/{id}            node with its path
//	DELETE /v1/nodes/{id}            purge (the node must be in the trash) → 204
//	POST   /v1/nodes/{id}/move       {parent_id?, name?} → node
//	POST   /v1/nodes/{id}/copy       {parent_id?, name?} → 201 {node, version}
//	GET    /v1/nodes/{id}/versions   → {versions}
//	POST   /v1/nodes/{id}/trash      → node
//	POST   /v1/nodes/{id}/restore    {name?} → node
//	GET    /v1/trash                 ?cursor=&limit= → {nodes, next_cursor}
//
// Reading needs files:read (every role), writing files:write (member and above).
func (s *Service) Routes(mux *http.ServeMux, auth Authenticator) {
	h := &handlers{s: s}
	route := func(path string, fn func(http.ResponseWriter, *http.Request, identity.Principal), methods ...string) {
		mux.Handle(path, apierror.Methods(auth(fn), methods...))
	}
	route("/v1/files", h.createUpload, http.MethodPost)
	route("/v1/files/commit", h.commit, http.MethodPost)
	route("/v1/uploads/{id}", h.upload, http.MethodGet, http.MethodDelete)
	route("/v1/uploads/{id}/parts", h.presignParts, http.MethodPost)
	route("/v1/files/{id}/content", h.content, http.MethodGet)
	route("/v1/folders", h.createFolder, http.MethodPost)
	route("/v1/nodes", h.list, http.MethodGet)
	route("/v1/nodes/{id}", h.node, http.MethodGet, http.MethodDelete)
	route("/v1/nodes/{id}/move", h.move, http.MethodPost)
	route("/v1/nodes/{id}/copy", h.copy, http.MethodPost)
	route("/v1/nodes/{id}/versions", h.versions, http.MethodGet)
	route("/v1/nodes/{id}/trash", h.trash, http.MethodPost)
	route("/v1/nodes/{id}/restore", h.restore, http.MethodPost)
	route("/v1/trash", h.listTrash, http.MethodGet)
}

// UnavailableRoutes answers every files endpoint with 503 and message, for a bitvaultd
// running without a database or an object store.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	httpx.Unavailable(mux, paths, message)
}

type handlers struct{ s *Service }

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	if vc, ok := errors.AsType[*VersionConflict](err); ok {
		httpx.WriteJSON(w, http.StatusConflict, conflictBody{
			Error:    apierror.Error{Code: apierror.CodeVersionConflict, Message: vc.Message, RequestID: bvlog.RequestID(r.Context())},
			Conflict: vc.Copy,
		})
		return
	}
	apierror.WriteError(w, r, h.s.logger, err)
}

// conflictBody is the 409 version_conflict answer: the error, and the conflicted copy that
// was written.
type conflictBody struct {
	apierror.Error
	Conflict CommitResult `json:"conflict"`
}

// limit reads ?limit= (0 when absent).
func limit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, invalid("limit must be between 1 and %d", MaxPageSize)
	}
	return n, nil
}

func (h *handlers) createUpload(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var in NewUpload
	if err := httpx.Decode(w, r, &in, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.s.CreateUpload(r.Context(), p, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, u)
}

func (h *handlers) commit(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	// Verification reads the whole object (up to storage.MaxObjectSize) from the store: lift
	// the server's usual write timeout for this answer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(storage.TransferTimeout))
	var in CommitRequest
	if err := httpx.Decode(w, r, &in, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.s.Commit(r.Context(), p, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, res)
}

func (h *handlers) upload(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodDelete {
		if err := h.s.CancelUpload(r.Context(), p, r.PathValue("id")); err != nil {
			h.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	u, err := h.s.GetUpload(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (h *handlers) presignParts(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var in PartsRequest
	if err := httpx.Decode(w, r, &in, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	parts, err := h.s.PresignParts(r.Context(), p, r.PathValue("id"), in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, parts)
}

// downloadBody accompanies the redirect, for clients that do not follow it.
type downloadBody struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expires_at"`
}

func (h *handlers) content(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	pr, err := h.s.Download(r.Context(), p, r.PathValue("id"), r.URL.Query().Get("version"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Location", pr.URL)
	httpx.WriteJSON(w, http.StatusFound, downloadBody{URL: pr.URL, ExpiresAt: pr.ExpiresAt.Format(time.RFC3339)})
}

type folderRequest struct {
	Path string `json:"path"`
}

func (h *handlers) createFolder(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var in folderRequest
	if err := httpx.Decode(w, r, &in, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.s.CreateFolder(r.Context(), p, in.Path)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, n)
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	n, err := limit(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := h.s.List(r.Context(), p, q.Get("parent"), q.Get("cursor"), n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

func (h *handlers) listTrash(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	n, err := limit(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.s.ListTrash(r.Context(), p, r.URL.Query().Get("cursor"), n)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

func (h *handlers) node(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodDelete {
		if err := h.s.Purge(r.Context(), p, r.PathValue("id")); err != nil {
			h.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	n, err := h.s.Get(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, n)
}

func (h *handlers) move(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var to Placement
	if err := httpx.Decode(w, r, &to, 0); err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.s.Move(r.Context(), p, r.PathValue("id"), to)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, n)
}

func (h *handlers) copy(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var to Placement
	if err := httpx.Decode(w, r, &to, httpx.Optional); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.s.Copy(r.Context(), p, r.PathValue("id"), to)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, res)
}

type versionsResponse struct {
	Versions []Version `json:"versions"`
}

func (h *handlers) versions(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	vs, err := h.s.Versions(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, versionsResponse{Versions: vs})
}

func (h *handlers) trash(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	n, err := h.s.Trash(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, n)
}

type restoreRequest struct {
	Name *string `json:"name"`
}

func (h *handlers) restore(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var in restoreRequest
	if err := httpx.Decode(w, r, &in, httpx.Optional); err != nil {
		h.fail(w, r, err)
		return
	}
	n, err := h.s.Restore(r.Context(), p, r.PathValue("id"), in.Name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, n)
}
