package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/pipeline"
	"github.com/bitvault/bitvault/release/record"
)

// commonOptions are the flags every pipeline command takes.
type commonOptions struct {
	Config    string
	Dist      string
	Output    string
	Progress  string
	Artifacts []string
	BasesMode string
}

func (o *commonOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Config, "config", "c", config.FileName, "release configuration")
	fs.StringVar(&o.Dist, "dist", "", "output directory (default: dist/ beside the configuration)")
	fs.StringVarP(&o.Output, "output", "o", "table", "result format: table or json")
	fs.StringVar(&o.Progress, "progress", "auto", "BuildKit progress display: auto, tty, plain, rawjson or quiet")
	fs.StringSliceVar(&o.Artifacts, "artifact", nil, "only these artifacts (repeatable; default all)")
	fs.StringVar(&o.BasesMode, "bases", "", "base images: auto (upstream when reachable), standin (offline) or upstream (default: bases.mode from the configuration)")
}

func (o *commonOptions) validate() error {
	if o.Output != "table" && o.Output != "json" {
		return usageError{fmt.Errorf("--output %q: use table or json", o.Output)}
	}
	switch o.BasesMode {
	case "", config.BasesAuto, config.BasesStandin, config.BasesUpstream:
	default:
		return usageError{fmt.Errorf("--bases %q: use auto, standin or upstream", o.BasesMode)}
	}
	return nil
}

// open loads the configuration and prepares a run.
func (o *commonOptions) open(log io.Writer, ro release.Options) (*release.Release, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	cfg, err := config.Load(o.Config)
	if err != nil {
		return nil, err
	}
	for _, a := range o.Artifacts {
		if _, ok := cfg.Artifact(a); !ok {
			return nil, usageError{fmt.Errorf("--artifact %s: no such artifact in %s", a, o.Config)}
		}
	}
	ro.Only = o.Artifacts
	ro.BasesMode = o.BasesMode
	ro.Progress = o.Progress
	ro.BuildkitHost = os.Getenv("BUILDKIT_HOST")
	ro.Log = log
	return release.New(cfg, o.Dist, ro), nil
}

// run executes stages and prints the result in the chosen format.
func (o *commonOptions) run(ctx context.Context, out io.Writer, r *release.Release, stages ...release.Stage) error {
	defer r.Close()
	err := pipeline.Run(ctx, r, stages...)
	if r.Record.Commit != "" {
		switch o.Output {
		case "json":
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if eerr := enc.Encode(r.Record); eerr != nil && err == nil {
				err = eerr
			}
		default:
			record.Summary(out, r.Record, r.RecordPath())
		}
	}
	if err != nil && strings.Contains(err.Error(), "not reproducible") {
		return fmt.Errorf("%w: %w", errUnreproducible, err)
	}
	return err
}
