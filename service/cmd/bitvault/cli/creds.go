package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

// CredentialsFile is the name of the credentials file in the config directory.
const CredentialsFile = "credentials.json"

// credentials is what 'bitvault login' stores: the server, who is logged in, and the
// session's tokens (or an API token).
type credentials struct {
	Server           string    `json:"server"`
	Tenant           string    `json:"tenant,omitempty"`
	Email            string    `json:"email,omitempty"`
	TenantID         string    `json:"tenant_id,omitempty"`
	UserID           string    `json:"user_id,omitempty"`
	Role             string    `json:"role,omitempty"`
	SessionID        string    `json:"session_id,omitempty"`
	AccessToken      string    `json:"access_token,omitempty"`
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	// APIToken is set instead of the session by 'bitvault login --api-token'.
	APIToken string    `json:"api_token,omitempty"`
	SavedAt  time.Time `json:"saved_at"`
}

func (c *credentials) session() client.Session {
	return client.Session{AccessToken: c.AccessToken, ExpiresAt: c.ExpiresAt, RefreshToken: c.RefreshToken, RefreshExpiresAt: c.RefreshExpiresAt}
}

// credStore is the credentials file (0600) in its directory (0700). It implements
// client.SessionStore: refreshes by concurrent bitvault processes are serialized by a lock
// file next to it.
type credStore struct {
	dir string
}

func (s *credStore) path() string { return filepath.Join(s.dir, CredentialsFile) }

// load reads the credentials; nil if there are none.
func (s *credStore) load() (*credentials, error) {
	b, err := os.ReadFile(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var c credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("credentials file %s is corrupt (%v): run 'bitvault login' again", s.path(), err)
	}
	return &c, nil
}

// save writes c atomically: a 0600 temporary file renamed over the file, in a 0700
// directory.
func (s *credStore) save(c *credentials) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	// The directory may have existed with looser permissions.
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	c.SavedAt = time.Now().UTC().Truncate(time.Second)
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, ".credentials-*.tmp")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// remove deletes the credentials file.
func (s *credStore) remove() error {
	err := os.Remove(s.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Lock timing: a lock file older than lockStale was left by a process that died.
const (
	lockWait  = 30 * time.Second
	lockStale = 2 * time.Minute
	lockPoll  = 50 * time.Millisecond
)

// Lock implements client.SessionStore with an exclusive lock file.
func (s *credStore) Lock(ctx context.Context) (*client.Session, func(), error) {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, nil, err
	}
	lock := s.path() + ".lock"
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, nil, err
		}
		if st, err := os.Stat(lock); err == nil && time.Since(st.ModTime()) > lockStale {
			_ = os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("credentials are locked by another bitvault process (remove %s if none runs)", lock)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
	unlock := func() { _ = os.Remove(lock) }
	c, err := s.load()
	if err != nil {
		unlock()
		return nil, nil, err
	}
	if c == nil || c.RefreshToken == "" {
		return nil, unlock, nil
	}
	sess := c.session()
	return &sess, unlock, nil
}

// Save implements client.SessionStore: it stores rotated tokens in the credentials file.
func (s *credStore) Save(sess client.Session) error {
	c, err := s.load()
	if err != nil {
		return err
	}
	if c == nil {
		// Logged out meanwhile: do not resurrect the session.
		return nil
	}
	c.AccessToken, c.ExpiresAt, c.RefreshToken, c.RefreshExpiresAt = sess.AccessToken, sess.ExpiresAt, sess.RefreshToken, sess.RefreshExpiresAt
	return s.save(c)
}
