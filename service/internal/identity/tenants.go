package identity

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/uuid"
)

// NewTenant is the input of CreateTenant.
type NewTenant struct {
	Slug          string `json:"slug"`
	Name          string `json:"name"`
	OwnerEmail    string `json:"owner_email"`
	OwnerPassword string `json:"owner_password"`
	OwnerName     string `json:"owner_name"`
}

// NewUser is the input of AddUser.
type NewUser struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	Role        Role   `json:"role"`
}

var slugPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CreateTenant creates a tenant and its first user, who owns it. The slug (what users type
// at login) must be unique: a taken one is "already_exists".
func (s *Service) CreateTenant(ctx context.Context, in NewTenant) (Tenant, User, error) {
	slug := strings.TrimSpace(in.Slug)
	name := strings.TrimSpace(in.Name)
	if !slugPattern.MatchString(slug) {
		return Tenant{}, User{}, invalid("slug %q: 1 to 63 lower-case letters, digits and inner hyphens", slug)
	}
	if name == "" || len(name) > 200 {
		return Tenant{}, User{}, invalid("name: 1 to 200 characters")
	}
	email, err := normalizeEmail(in.OwnerEmail)
	if err != nil {
		return Tenant{}, User{}, err
	}
	displayName, err := checkDisplayName(in.OwnerName)
	if err != nil {
		return Tenant{}, User{}, err
	}
	if err := checkPassword(in.OwnerPassword); err != nil {
		return Tenant{}, User{}, err
	}
	hash, err := s.hash(ctx, in.OwnerPassword)
	if err != nil {
		return Tenant{}, User{}, err
	}

	t := Tenant{ID: uuid.New(), Slug: slug, Name: name}
	u := User{TenantID: t.ID, Email: email, DisplayName: displayName, Role: RoleOwner}
	err = db.WithTenant(ctx, s.pool, t.ID, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3) RETURNING status, created_at",
			t.ID, t.Slug, t.Name).Scan(&t.Status, &t.CreatedAt); err != nil {
			if isUniqueViolation(err, "tenants_slug_key") {
				return apierror.New(apierror.CodeAlreadyExists, fmt.Sprintf("tenant slug %q is taken", slug))
			}
			return err
		}
		return insertUser(ctx, tx, &u, hash)
	})
	if err != nil {
		return Tenant{}, User{}, wrap("create tenant", err)
	}
	return t, u, nil
}

// AddUser adds a user with a role to p's tenant. It needs members:manage, and only an owner
// may make owners.
func (s *Service) AddUser(ctx context.Context, p Principal, in NewUser) (User, error) {
	if err := Authorize(p, PermMembersManage); err != nil {
		return User{}, err
	}
	if !in.Role.Valid() {
		return User{}, invalid("role %q: want owner, admin, member or viewer", in.Role)
	}
	if in.Role == RoleOwner && p.Role != RoleOwner {
		return User{}, ErrPermissionDenied
	}
	email, err := normalizeEmail(in.Email)
	if err != nil {
		return User{}, err
	}
	displayName, err := checkDisplayName(in.DisplayName)
	if err != nil {
		return User{}, err
	}
	if err := checkPassword(in.Password); err != nil {
		return User{}, err
	}
	hash, err := s.hash(ctx, in.Password)
	if err != nil {
		return User{}, err
	}
	u := User{TenantID: p.TenantID, Email: email, DisplayName: displayName, Role: in.Role}
	err = db.WithTenant(ctx, s.pool, p.TenantID, func(tx pgx.Tx) error {
		if err := insertUser(ctx, tx, &u, hash); err != nil {
			return err
		}
		return audit.Record(ctx, tx, p.TenantID, p.UserID, audit.UserAdded, u.ID, map[string]any{"email": u.Email, "role": string(u.Role)})
	})
	if err != nil {
		return User{}, wrap("add user", err)
	}
	return u, nil
}

// insertUser inserts u and its membership; u.ID and u.CreatedAt are filled in.
func insertUser(ctx context.Context, tx pgx.Tx, u *User, passwordHash string) error {
	err := tx.QueryRow(ctx, "INSERT INTO users (tenant_id, email, display_name, password_hash) VALUES ($1, $2, $3, $4) RETURNING id, created_at",
		u.TenantID, u.Email, u.DisplayName, passwordHash).Scan(&u.ID, &u.CreatedAt)
	if err != nil {
		if isUniqueViolation(err, "users_tenant_id_email_key") {
			return apierror.New(apierror.CodeAlreadyExists, fmt.Sprintf("a user with email %s exists in this tenant", u.Email))
		}
		return err
	}
	_, err = tx.Exec(ctx, "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)", u.TenantID, u.ID, string(u.Role))
	return err
}

// normalizeEmail accepts a bare address (no display name) and lower-cases it.
func normalizeEmail(s string) (string, error) {
	s = strings.TrimSpace(s)
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || len(s) > 320 {
		return "", invalid("email %q is not a valid address", s)
	}
	return strings.ToLower(s), nil
}

func checkDisplayName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		return "", invalid("display name: at most 200 characters")
	}
	return s, nil
}

func isUniqueViolation(err error, constraint string) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// wrap adds context to internal errors and passes coded ones (client errors) through.
func wrap(op string, err error) error {
	if err == nil || isCoded(err) {
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
