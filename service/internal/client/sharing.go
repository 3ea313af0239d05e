package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Share roles.
const (
	ShareViewer = "viewer"
	ShareEditor = "editor"
)

// Share grants a node (and its subtree) to a user of the tenant.
type Share struct {
	ID        string    `json:"id"`
	NodeID    string    `json:"node_id"`
	UserID    string    `json:"user_id"`
	UserEmail string    `json:"user_email"`
	UserName  string    `json:"user_display_name"`
	Role      string    `json:"role"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// NewShare grants a node to a user, named by UserID or Email.
type NewShare struct {
	UserID string `json:"user_id,omitempty"`
	Email  string `json:"email,omitempty"`
	Role   string `json:"role"`
}

// SharedNode is a share granted to the caller, with its node.
type SharedNode struct {
	Share
	NodeType string `json:"node_type"`
	NodeName string `json:"node_name"`
	Path     string `json:"path"`
}

// Link is a public link (never with its token).
type Link struct {
	ID           string     `json:"id"`
	NodeID       string     `json:"node_id"`
	Prefix       string     `json:"prefix"`
	HasPassword  bool       `json:"has_password"`
	DownloadOnly bool       `json:"download_only"`
	ExpiresAt    *time.Time `json:"expires_at"`
	CreatedBy    string     `json:"created_by"`
	CreatedAt    time.Time  `json:"created_at"`
}

// NewLink creates a public link; every field is optional.
type NewLink struct {
	Password     *string    `json:"password,omitempty"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	DownloadOnly *bool      `json:"download_only,omitempty"`
}

// CreatedLink is the answer of CreateLink: Token is shown only there; URL is the link's
// path on the API (/v1/links/{token}).
type CreatedLink struct {
	Link  Link   `json:"link"`
	Token string `json:"token"`
	URL   string `json:"url"`
}

// HeaderLinkPassword carries a public link's password.
const HeaderLinkPassword = "X-Link-Password"

// Share grants node id to a user (POST /v1/nodes/{id}/shares); granting again changes the
// role.
func (c *Client) Share(ctx context.Context, id string, in NewShare) (Share, error) {
	var out Share
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/nodes/" + pathID(id) + "/shares", body: in, auth: true}, &out)
	return out, err
}

// Shares lists a node's active shares (GET /v1/nodes/{id}/shares).
func (c *Client) Shares(ctx context.Context, id string) ([]Share, error) {
	var out struct {
		Shares []Share `json:"shares"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/nodes/" + pathID(id) + "/shares", auth: true}, &out)
	return out.Shares, err
}

// RevokeShare revokes a share (DELETE /v1/nodes/{id}/shares/{share_id}).
func (c *Client) RevokeShare(ctx context.Context, id, shareID string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/nodes/" + pathID(id) + "/shares/" + pathID(shareID), auth: true, want: http.StatusNoContent}, nil)
	return err
}

// SharedWithMe lists the shares granted to the caller (GET /v1/shares).
func (c *Client) SharedWithMe(ctx context.Context) ([]SharedNode, error) {
	var out struct {
		Shares []SharedNode `json:"shares"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/shares", auth: true}, &out)
	return out.Shares, err
}

// CreateLink creates a public link to a file (POST /v1/nodes/{id}/links).
func (c *Client) CreateLink(ctx context.Context, id string, in NewLink) (CreatedLink, error) {
	var out CreatedLink
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/nodes/" + pathID(id) + "/links", body: in, auth: true, want: http.StatusCreated}, &out)
	return out, err
}

// Links lists a node's links (GET /v1/nodes/{id}/links).
func (c *Client) Links(ctx context.Context, id string) ([]Link, error) {
	var out struct {
		Links []Link `json:"links"`
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/nodes/" + pathID(id) + "/links", auth: true}, &out)
	return out.Links, err
}

// RevokeLink revokes a link (DELETE /v1/nodes/{id}/links/{link_id}).
func (c *Client) RevokeLink(ctx context.Context, id, linkID string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/nodes/" + pathID(id) + "/links/" + pathID(linkID), auth: true, want: http.StatusNoContent}, nil)
	return err
}

// LinkURL is the absolute URL of a link's path (CreatedLink.URL).
func (c *Client) LinkURL(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return c.url(path, nil)
}

// ResolveLink returns the presigned GET a public link redirects to (GET /v1/links/{token},
// no credentials; the password, if any, in X-Link-Password).
func (c *Client) ResolveLink(ctx context.Context, token, password string) (Download, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v1/links/"+pathID(token), nil), nil)
	if err != nil {
		return Download{}, err
	}
	req.Header.Set("User-Agent", c.userAgent)
	if password != "" {
		req.Header.Set(HeaderLinkPassword, password)
	}
	resp, err := c.api.Do(req)
	if err != nil {
		return Download{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		if resp.StatusCode >= 400 {
			return Download{}, decodeError(resp)
		}
		return Download{}, fmt.Errorf("GET /v1/links/…: unexpected status %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return Download{}, fmt.Errorf("GET /v1/links/…: redirect without a location")
	}
	return Download{URL: loc}, nil
}

// SearchHit is one search result.
type SearchHit struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Name      string    `json:"name"`
	ParentID  *string   `json:"parent_id"`
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	UpdatedAt time.Time `json:"updated_at"`
	Rank      float64   `json:"rank"`
}

// SearchPage is one page of search results.
type SearchPage struct {
	Results    []SearchHit `json:"results"`
	NextCursor string      `json:"next_cursor"`
}

// Search searches names and metadata (GET /v1/search); limit 0 is the server's default.
func (c *Client) Search(ctx context.Context, q, cursor string, limit int) (SearchPage, error) {
	v := url.Values{"q": {q}}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out SearchPage
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/search", query: v, auth: true}, &out)
	return out, err
}
