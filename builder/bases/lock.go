package bases

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/bitvault/bitvault/internal/atomicfile"
)

const lockSchema = 1

// lockFile is the on-disk form of Options.LockFile.
type lockFile struct {
	Comment string  `json:"comment"`
	Schema  int     `json:"schema"`
	Debian  Debian  `json:"debian"`
	Inputs  []Input `json:"inputs"`
}

func readLock(file string) (*lockFile, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var l lockFile
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("lock %s: %w", file, err)
	}
	if l.Schema != lockSchema {
		return nil, fmt.Errorf("lock %s: schema %d, this bvrelease reads schema %d; run 'bvrelease bases --update-lock'", file, l.Schema, lockSchema)
	}
	return &l, nil
}

func writeLock(file string, suite string, inputs []Input) error {
	inputs = append([]Input(nil), inputs...)
	sortInputs(inputs)
	l := lockFile{
		Comment: "Inputs of the offline base-image stand-ins. Written by 'bvrelease bases --update-lock'; do not edit.",
		Schema:  lockSchema,
		Debian:  Debian{Suite: suite},
		Inputs:  inputs,
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(file, append(b, '\n'), 0o644)
}

func sortInputs(in []Input) {
	sort.Slice(in, func(i, j int) bool {
		a, b := in[i], in[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if a.Platform != b.Platform {
			return a.Platform < b.Platform
		}
		return a.Version < b.Version
	})
}

// lookup finds the locked input for n. Debian versions come from the lock;
// Go and npm versions come from the spec and must match the lock.
func (l *lockFile) lookup(n need) (Input, error) {
	var other *Input
	for i, in := range l.Inputs {
		if in.Name != n.name() || in.Platform != n.platform {
			continue
		}
		if n.version == "" || in.Version == n.version {
			return in, nil
		}
		other = &l.Inputs[i]
	}
	where := n.name()
	if n.platform != "" {
		where += " (" + n.platform + ")"
	}
	if other != nil {
		return Input{}, fmt.Errorf("%w: the lock has %s %s but the spec wants %s; run 'bvrelease bases --update-lock'", errNotLocked, where, other.Version, n.version)
	}
	return Input{}, fmt.Errorf("%w: %s is not in the lock; run 'bvrelease bases --update-lock'", errNotLocked, where)
}

var errNotLocked = errors.New("input not locked")
