package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Node types.
const (
	TypeFile   = "file"
	TypeFolder = "folder"
)

// Node is a file or folder.
type Node struct {
	ID       string  `json:"id"`
	Type     string  `json:"type"`
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"`
	// Path is set by the answers about a single node.
	Path string `json:"path,omitempty"`
	// Size is the current version's size (files).
	Size           int64      `json:"size"`
	CurrentVersion *Version   `json:"current_version,omitempty"`
	CreatedBy      string     `json:"created_by"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	TrashedAt      *time.Time `json:"trashed_at,omitempty"`
	InTrash        bool       `json:"in_trash,omitempty"`
}

// IsFolder reports whether n is a folder.
func (n Node) IsFolder() bool { return n.Type == TypeFolder }

// Version is one immutable content of a file.
type Version struct {
	ID            string    `json:"id"`
	NodeID        string    `json:"node_id"`
	Number        int       `json:"number"`
	Size          int64     `json:"size"`
	BLAKE3        string    `json:"blake3"`
	CreatedBy     string    `json:"created_by"`
	BaseVersionID *string   `json:"base_version_id"`
	CreatedAt     time.Time `json:"created_at"`
}

// Page is one page of a listing; NextCursor is "" on the last.
type Page struct {
	Nodes      []Node `json:"nodes"`
	NextCursor string `json:"next_cursor"`
}

// Presigned is a request to the object store, made without the caller's credentials.
type Presigned struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	// Header must be sent as is (it is signed).
	Header    http.Header `json:"headers,omitempty"`
	ExpiresAt time.Time   `json:"expires_at"`
}

// NewUpload declares a file to upload.
type NewUpload struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	BLAKE3 string `json:"blake3"`
	// SHA256, optional, is signed into the presigned PUT: the store refuses other bytes.
	SHA256 string `json:"sha256,omitempty"`
}

// Upload is a started upload.
type Upload struct {
	ID        string    `json:"upload_id"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	BLAKE3    string    `json:"blake3"`
	ExpiresAt time.Time `json:"expires_at"`
	// Put uploads the bytes, straight to the object store (unless Multipart is set).
	Put Presigned `json:"upload,omitzero"`
	// Multipart, if set, says the upload is staged in parts (PresignParts) instead.
	Multipart *Multipart `json:"multipart,omitempty"`
}

// CommitRequest commits an upload; BaseVersion is the version the content is based on
// (nil: the file is new).
type CommitRequest struct {
	UploadID    string  `json:"upload_id"`
	BaseVersion *string `json:"base_version,omitempty"`
}

// CommitResult is a written version.
type CommitResult struct {
	Node         Node    `json:"node"`
	Version      Version `json:"version"`
	Deduplicated bool    `json:"deduplicated"`
	Seq          int64   `json:"seq"`
}

// Placement names a target for Move and Copy: ParentID nil keeps the folder ("" is the
// root), Name nil keeps the name.
type Placement struct {
	ParentID *string `json:"parent_id,omitempty"`
	Name     *string `json:"name,omitempty"`
}

// Download is the answer of the content endpoint: a presigned GET.
type Download struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateUpload declares a file and gets the presigned PUT of its bytes (POST /v1/files).
func (c *Client) CreateUpload(ctx context.Context, in NewUpload) (Upload, error) {
	var out Upload
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/files", body: in, auth: true, want: http.StatusCreated}, &out)
	return out, err
}

// Commit verifies an upload's bytes and writes the version (POST /v1/files/commit). A
// conflict is an *Error with code version_conflict whose Conflict is the conflicted copy.
func (c *Client) Commit(ctx context.Context, in CommitRequest) (CommitResult, error) {
	var out CommitResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/files/commit", body: in, auth: true, want: http.StatusCreated, long: true}, &out)
	return out, err
}

// ContentURL returns the presigned GET of a file's content (GET /v1/files/{id}/content,
// whose redirect is not followed): the current version, or versionID's.
func (c *Client) ContentURL(ctx context.Context, nodeID, versionID string) (Download, error) {
	var q url.Values
	if versionID != "" {
		q = url.Values{"version": {versionID}}
	}
	var out Download
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/files/" + pathID(nodeID) + "/content", query: q, auth: true, want: http.StatusFound}, &out)
	if err != nil {
		return Download{}, err
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		out.URL = loc
	}
	if out.URL == "" {
		return Download{}, fmt.Errorf("GET /v1/files/%s/content: redirect without a location", nodeID)
	}
	return out, nil
}

// CreateFolder creates a folder and the missing folders above it (POST /v1/folders).
func (c *Client) CreateFolder(ctx context.Context, path string) (Node, error) {
	var out Node
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/folders", body: struct {
		Path string `json:"path"`
	}{path}, auth: true, want: http.StatusCreated}, &out)
	return out, err
}

// List returns one page of a folder's live children (GET /v1/nodes); parentID "" is the
// root, limit 0 the server's default.
func (c *Client) List(ctx context.Context, parentID, cursor string, limit int) (Page, error) {
	q := url.Values{}
	if parentID != "" {
		q.Set("parent", parentID)
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out Page
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/nodes", query: q, auth: true}, &out)
	return out, err
}

// MaxPageSize is the largest page the server returns.
const MaxPageSize = 1000

// ListAll returns all live children of a folder, following the cursor.
func (c *Client) ListAll(ctx context.Context, parentID string) ([]Node, error) {
	var all []Node
	cursor := ""
	for {
		p, err := c.List(ctx, parentID, cursor, MaxPageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Nodes...)
		if p.NextCursor == "" {
			return all, nil
		}
		cursor = p.NextCursor
	}
}

// ListTrash returns one page of the nodes put in the trash by themselves, most recent first
// (GET /v1/trash).
func (c *Client) ListTrash(ctx context.Context, cursor string, limit int) (Page, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out Page
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/trash", query: q, auth: true}, &out)
	return out, err
}

// ListAllTrash returns the whole trash, following the cursor.
func (c *Client) ListAllTrash(ctx context.Context) ([]Node, error) {
	var all []Node
	cursor := ""
	for {
		p, err := c.ListTrash(ctx, cursor, MaxPageSize)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Nodes...)
		if p.NextCursor == "" {
			return all, nil
		}
		cursor = p.NextCursor
	}
}

// Node returns a node, in the trash or not, with its path (GET /v1/nodes/{id}).
func (c *Client) Node(ctx context.Context, id string) (Node, error) {
	var out Node
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/nodes/" + pathID(id), auth: true}, &out)
	return out, err
}

// Purge deletes a node in the trash for good (DELETE /v1/nodes/{id}).
func (c *Client) Purge(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/nodes/" + pathID(id), auth: true, want: http.StatusNoContent}, nil)
	return err
}

// Move moves and/or renames a node (POST /v1/nodes/{id}/move).
func (c *Client) Move(ctx context.Context, id string, to Placement) (Node, error) {
	var out Node
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/nodes/" + pathID(id) + "/move", body: to, auth: true}, &out)
	return out, err
}

// Copy copies a file (POST /v1/nodes/{id}/copy).
func (c *Client) Copy(ctx context.Context, id string, to Placement) (CommitResult, error) {
	var out CommitResult
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/nodes/" + pathID(id) + "/copy", body: to, auth: true, want: http.StatusCreated}, &out)
	return out, err
}

// Versions lists a file's versions, newest first (GET /v1/nodes/{id}/versions).
func (c *Client) Versions(ctx context.Context, id string) ([]Version, error) {
	var out struct {
		Versions []Version `json:"versions"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/nodes/" + pathID(id) + "/versions", auth: true}, &out)
	return out.Versions, err
}

// Trash puts a node in the trash (POST /v1/nodes/{id}/trash).
func (c *Client) Trash(ctx context.Context, id string) (Node, error) {
	var out Node
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/nodes/" + pathID(id) + "/trash", auth: true}, &out)
	return out, err
}

// Restore takes a node out of the trash, under its name or newName (POST
// /v1/nodes/{id}/restore).
func (c *Client) Restore(ctx context.Context, id string, newName *string) (Node, error) {
	var out Node
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/nodes/" + pathID(id) + "/restore", body: struct {
		Name *string `json:"name,omitempty"`
	}{newName}, auth: true}, &out)
	return out, err
}
