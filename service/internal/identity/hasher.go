package identity

import "context"

// HashPassword hashes a secret other modules store (a share link's password) with the
// service's argon2id parameters, under the same concurrency bound as login passwords.
// Length rules are the caller's.
func (s *Service) HashPassword(ctx context.Context, password string) (string, error) {
	return s.hash(ctx, password)
}

// VerifyPassword checks password against a hash made by HashPassword, in constant time. A
// malformed hash is an error.
func (s *Service) VerifyPassword(ctx context.Context, password, encoded string) (bool, error) {
	return s.verify(ctx, password, encoded)
}
