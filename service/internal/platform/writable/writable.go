// Package writable checks that the process's one writable directory accepts files.
//
// The images run on a read-only root filesystem with only /tmp (an emptyDir) writable, so the
// binaries write nowhere else; this check runs once at start and then as a readiness check.
package writable

import (
	"context"
	"fmt"
	"os"
)

// Check creates, writes, syncs and removes a temporary file in dir.
func Check(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("writable dir %s: %w (mount a writable volume there or set BITVAULT_DATA_DIR)", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("writable dir %s: not a directory (set BITVAULT_DATA_DIR to a writable directory)", dir)
	}
	f, err := os.CreateTemp(dir, ".bitvault-writable-*")
	if err != nil {
		return fmt.Errorf("writable dir %s: %w (mount a writable volume there, e.g. an emptyDir)", dir, err)
	}
	name := f.Name()
	_, werr := f.Write([]byte("ok"))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	rerr := os.Remove(name)
	switch {
	case werr != nil:
		return fmt.Errorf("writable dir %s: write %s: %w", dir, name, werr)
	case cerr != nil:
		return fmt.Errorf("writable dir %s: close %s: %w", dir, name, cerr)
	case rerr != nil:
		return fmt.Errorf("writable dir %s: remove %s: %w", dir, name, rerr)
	}
	return nil
}

// HealthCheck returns Check(dir) as a readiness check.
func HealthCheck(dir string) func(context.Context) error {
	return func(context.Context) error { return Check(dir) }
}
