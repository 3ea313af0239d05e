//go:build !unix

package bases

// flock is a no-op where flock(2) does not exist; building stand-ins needs
// a Debian host anyway.
func flock(file string) (func(), error) { return func() {}, nil }
