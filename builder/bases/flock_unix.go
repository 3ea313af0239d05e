//go:build unix

package bases

import (
	"os"
	"syscall"
)

// flock takes an exclusive advisory lock on file (created if missing),
// waiting for other processes; the returned func releases it.
func flock(file string) (func(), error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
