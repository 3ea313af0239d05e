package sync

import (
	"net/http"
	"strconv"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/httpx"
)

// Authenticator wraps a handler that needs the caller's principal, answering 401 itself
// (identity.Service.Authenticated).
type Authenticator func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler

// Paths served by Routes.
var paths = []string{"/v1/devices", "/v1/devices/{id}", "/v1/devices/{id}/cursor", "/v1/sync/changes", "/v1/sync/cursor"}

// Routes adds the sync endpoints to mux:
//
//	POST   /v1/devices               {id?, name} → 201 device (200: already registered)
//	GET    /v1/devices               → {devices}
//	GET    /v1/devices/{id}          → device
//	DELETE /v1/devices/{id}          → 204
//	PUT    /v1/devices/{id}/cursor   {cursor} → device; 409 cursor_stale
//	GET    /v1/sync/changes          ?cursor=&limit=&wait= → {changes, next_cursor, has_more, latest_cursor}; 409 cursor_stale
//	                                 (wait: long poll, up to MaxWait, for a change after cursor)
//	GET    /v1/sync/cursor           → {cursor, horizon}
func (s *Service) Routes(mux *http.ServeMux, auth Authenticator) {
	h := &handlers{s: s}
	route := func(path string, fn func(http.ResponseWriter, *http.Request, identity.Principal), methods ...string) {
		mux.Handle(path, apierror.Methods(auth(fn), methods...))
	}
	route("/v1/devices", h.devices, http.MethodGet, http.MethodPost)
	route("/v1/devices/{id}", h.device, http.MethodGet, http.MethodDelete)
	route("/v1/devices/{id}/cursor", h.cursor, http.MethodPut)
	route("/v1/sync/changes", h.changes, http.MethodGet)
	route("/v1/sync/cursor", h.latest, http.MethodGet)
}

// UnavailableRoutes answers every sync endpoint with 503 and message.
func UnavailableRoutes(mux *http.ServeMux, message string) {
	httpx.Unavailable(mux, paths, message)
}

type handlers struct{ s *Service }

func (h *handlers) fail(w http.ResponseWriter, r *http.Request, err error) {
	apierror.WriteError(w, r, h.s.logger, err)
}

// intParam reads a non-negative integer query parameter (0 when absent).
func intParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("%s: want a number >= 0", name)
	}
	return n, nil
}

type devicesResponse struct {
	Devices []Device `json:"devices"`
}

func (h *handlers) devices(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		list, err := h.s.ListDevices(r.Context(), p)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, devicesResponse{Devices: list})
		return
	}
	var in NewDevice
	if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
		h.fail(w, r, err)
		return
	}
	d, created, err := h.s.RegisterDevice(r.Context(), p, in)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, d)
}

func (h *handlers) device(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	if r.Method == http.MethodDelete {
		if err := h.s.DeleteDevice(r.Context(), p, r.PathValue("id")); err != nil {
			h.fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	d, err := h.s.GetDevice(r.Context(), p, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, d)
}

type cursorRequest struct {
	Cursor *int64 `json:"cursor"`
}

func (h *handlers) cursor(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	var in cursorRequest
	if err := httpx.Decode(w, r, &in, httpx.Strict); err != nil {
		h.fail(w, r, err)
		return
	}
	if in.Cursor == nil {
		h.fail(w, r, invalid("cursor is required"))
		return
	}
	d, err := h.s.SetCursor(r.Context(), p, r.PathValue("id"), *in.Cursor)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, d)
}

func (h *handlers) changes(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	cursor, err := intParam(r, "cursor")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := intParam(r, "limit")
	if err == nil && r.URL.Query().Has("limit") && (limit < 1 || limit > MaxPageSize) {
		err = invalid("limit must be between 1 and %d", MaxPageSize)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	wait, err := waitParam(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if wait > 0 {
		extendDeadlines(w, wait)
	}
	page, err := h.s.WaitChanges(r.Context(), p, cursor, int(limit), wait)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away: nobody to answer
		}
		h.fail(w, r, err)
		return
	}
	if wait > 0 && h.s.draining() {
		// Cut short by the drain: the client's next poll goes through a new connection,
		// to a replica that is not stopping.
		w.Header().Set("Connection", "close")
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

// waitParam reads the wait parameter: a duration ("30s", "1m", "500ms") or a number of
// seconds, from 0 (no wait, the default) to MaxWait.
func waitParam(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 16)
		if nerr != nil {
			return 0, invalid("wait: want a duration such as 30s (at most %s)", MaxWait)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > MaxWait {
		return 0, invalid("wait must be between 0s and %s", MaxWait)
	}
	return d, nil
}

// deadlineMargin is the time a long poll's request gets beyond its wait: the journal's
// last read and the answer.
const deadlineMargin = 30 * time.Second

// extendDeadlines lifts the server's read and write timeouts (shorter than MaxWait) for a
// long poll. The read deadline matters too: net/http cancels a request's context when the
// connection's background read times out.
func extendDeadlines(w http.ResponseWriter, wait time.Duration) {
	rc := http.NewResponseController(w)
	until := time.Now().Add(wait + deadlineMargin)
	_ = rc.SetReadDeadline(until)
	_ = rc.SetWriteDeadline(until)
}

func (h *handlers) latest(w http.ResponseWriter, r *http.Request, p identity.Principal) {
	pos, err := h.s.Latest(r.Context(), p)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, pos)
}
