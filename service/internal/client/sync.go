package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Device is a sync client of the caller's.
type Device struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Cursor          int64      `json:"cursor"`
	CursorUpdatedAt *time.Time `json:"cursor_updated_at"`
	CreatedAt       time.Time  `json:"created_at"`
}

// NewDevice registers a device; ID (a UUID) is optional, chosen by the client.
type NewDevice struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
}

// Change operations.
const (
	OpCreate  = "create"
	OpUpdate  = "update"
	OpMove    = "move"
	OpTrash   = "trash"
	OpRestore = "restore"
	OpPurge   = "purge"
)

// CodeCursorStale answers a cursor that cannot be resumed: do a full resync.
const CodeCursorStale = "cursor_stale"

// Change is one change of the journal.
type Change struct {
	Seq      int64   `json:"seq"`
	Op       string  `json:"op"`
	NodeID   string  `json:"node_id"`
	NodeType string  `json:"node_type"`
	ParentID *string `json:"parent_id"`
	Name     string  `json:"name"`
	// Path is informational (the parent's current path and Name; null once the parent is
	// purged): apply changes by node id, parent id and name.
	Path      *string   `json:"path"`
	VersionID *string   `json:"version_id,omitempty"`
	Version   *int      `json:"version,omitempty"`
	Hash      *string   `json:"hash,omitempty"`
	Size      *int64    `json:"size,omitempty"`
	ActorID   string    `json:"actor_id"`
	At        time.Time `json:"at"`
}

// Changes is one page of the journal.
type Changes struct {
	Changes      []Change `json:"changes"`
	NextCursor   int64    `json:"next_cursor"`
	HasMore      bool     `json:"has_more"`
	LatestCursor int64    `json:"latest_cursor"`
}

// SyncPosition is where the journal stands: Cursor the latest seq, Horizon the oldest
// cursor that can be resumed.
type SyncPosition struct {
	Cursor  int64 `json:"cursor"`
	Horizon int64 `json:"horizon"`
}

// RegisterDevice registers (or renames) a device (POST /v1/devices).
func (c *Client) RegisterDevice(ctx context.Context, in NewDevice) (Device, error) {
	var out Device
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/devices", body: in, auth: true}, &out)
	return out, err
}

// ListDevices lists the caller's devices (GET /v1/devices).
func (c *Client) ListDevices(ctx context.Context) ([]Device, error) {
	var out struct {
		Devices []Device `json:"devices"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/devices", auth: true}, &out)
	return out.Devices, err
}

// Device returns one of the caller's devices (GET /v1/devices/{id}).
func (c *Client) Device(ctx context.Context, id string) (Device, error) {
	var out Device
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/devices/" + pathID(id), auth: true}, &out)
	return out, err
}

// DeleteDevice unregisters a device (DELETE /v1/devices/{id}).
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/devices/" + pathID(id), auth: true, want: http.StatusNoContent}, nil)
	return err
}

// SetDeviceCursor persists the cursor a device has applied (PUT /v1/devices/{id}/cursor).
func (c *Client) SetDeviceCursor(ctx context.Context, id string, cursor int64) (Device, error) {
	var out Device
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/devices/" + pathID(id) + "/cursor", body: struct {
		Cursor int64 `json:"cursor"`
	}{cursor}, auth: true}, &out)
	return out, err
}

// Changes returns the changes after cursor (GET /v1/sync/changes); limit 0 is the server's
// default. A cursor that cannot be resumed is an *Error with code cursor_stale.
func (c *Client) Changes(ctx context.Context, cursor int64, limit int) (Changes, error) {
	return c.changes(ctx, cursor, limit, 0)
}

// MaxWait is the longest wait the server takes for WaitChanges.
const MaxWait = 60 * time.Second

// WaitChanges is Changes as a long poll (?wait=): when there is no change after cursor, the
// server waits up to wait (at most MaxWait) for one, then answers the empty page. The call
// is bounded by wait plus DefaultTimeout.
func (c *Client) WaitChanges(ctx context.Context, cursor int64, limit int, wait time.Duration) (Changes, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+DefaultTimeout)
	defer cancel()
	return c.changes(ctx, cursor, limit, wait)
}

func (c *Client) changes(ctx context.Context, cursor int64, limit int, wait time.Duration) (Changes, error) {
	q := url.Values{"cursor": {strconv.FormatInt(cursor, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var out Changes
	// A long poll outlives the API calls' timeout: ctx bounds it.
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/sync/changes", query: q, auth: true, long: wait > 0}, &out)
	return out, err
}

// SyncCursor returns the journal's position (GET /v1/sync/cursor).
func (c *Client) SyncCursor(ctx context.Context) (SyncPosition, error) {
	var out SyncPosition
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/sync/cursor", auth: true}, &out)
	return out, err
}
