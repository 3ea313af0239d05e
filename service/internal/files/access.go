package files

import (
	"context"
	"errors"

	"github.com/bitvault/bitvault/service/internal/identity"
)

// NodeAuthorizer is the node-level access check of the sharing module
// (sharing.Service.AuthorizeNode): nil when p may read (or, with write, write) node id
// through its tenant role or an active share on the node or a folder above it; a not_found
// error when it has no access at all, a 403 one when it may read but not write. It is an
// interface so that files does not import sharing.
type NodeAuthorizer interface {
	AuthorizeNode(ctx context.Context, p identity.Principal, nodeID string, write bool) error
}

// SetNodeAuthorizer makes node-level operations consult shares (see the package
// documentation). Without one, only the tenant role counts. Call it before serving.
func (s *Service) SetNodeAuthorizer(a NodeAuthorizer) { s.nodes = a }

func permFor(write bool) identity.Permission {
	if write {
		return identity.PermFilesWrite
	}
	return identity.PermFilesRead
}

// sharesMayGrant reports whether a role check that failed with err could still be overcome
// by a share: only when the role lacks the permission (not for an unauthenticated caller, nor
// for an API token whose scopes do not allow it) and shares are consulted.
func (s *Service) sharesMayGrant(p identity.Principal, perm identity.Permission, err error) bool {
	return s.nodes != nil && errors.Is(err, identity.ErrPermissionDenied) && identity.ScopeAllows(p, perm)
}

// gate is the check made before the node is known: the role's, unless a share could grant
// the permission on some node (the node-level check follows).
func (s *Service) gate(p identity.Principal, write bool) error {
	perm := permFor(write)
	if err := identity.Authorize(p, perm); err != nil && !s.sharesMayGrant(p, perm, err) {
		return err
	}
	return nil
}

// authorizeNode checks that p may read (write) node id: its tenant role, else a share.
func (s *Service) authorizeNode(ctx context.Context, p identity.Principal, id string, write bool) error {
	perm := permFor(write)
	err := identity.Authorize(p, perm)
	if err == nil || !s.sharesMayGrant(p, perm, err) {
		return err
	}
	return s.nodes.AuthorizeNode(ctx, p, id, write)
}

// authorizeParent checks that p may write in folder parentID ("" or nil: the root, which
// only the tenant role allows).
func (s *Service) authorizeParent(ctx context.Context, p identity.Principal, parentID *string) error {
	if parentID == nil || *parentID == "" {
		return identity.Authorize(p, identity.PermFilesWrite)
	}
	id, err := nodeID(*parentID)
	if err != nil {
		return err
	}
	return s.authorizeNode(ctx, p, id, true)
}

// authorizePath checks that p may write at path segs: its tenant role, else write access to
// the deepest live node on the path (the file itself, or the nearest existing folder above
// where it will be created). A path whose first segment does not exist is at the root,
// which only the role allows.
//
// The check runs before the writing transaction: a share revoked in between does not stop a
// write already authorized (as for every request in flight).
func (s *Service) authorizePath(ctx context.Context, p identity.Principal, segs []string) error {
	err := identity.Authorize(p, identity.PermFilesWrite)
	if err == nil || !s.sharesMayGrant(p, identity.PermFilesWrite, err) {
		return err
	}
	var deepest *Node
	lerr := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		deepest = nil
		var parent *string
		for _, name := range segs {
			n, err := t.liveChild(ctx, parent, name, "")
			if err != nil || n == nil {
				return err
			}
			deepest, parent = n, &n.ID
		}
		return nil
	})
	if lerr != nil {
		return wrap("authorize", lerr)
	}
	if deepest == nil {
		return err
	}
	return s.nodes.AuthorizeNode(ctx, p, deepest.ID, true)
}

// parentOf returns node id's parent (nil: the root).
func (s *Service) parentOf(ctx context.Context, p identity.Principal, id string) (*string, error) {
	var parent *string
	err := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		n, err := t.getNode(ctx, id, "")
		parent = n.ParentID
		return err
	})
	return parent, wrap("parent", err)
}
