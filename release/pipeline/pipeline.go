// Package pipeline runs release stages in order: it times each one, records
// how it ended (ok, skipped with its reason, failed), saves dist/release.json
// after every stage — so a failure keeps what earlier stages did and a re-run
// resumes — and stops at the first failure.
package pipeline

import (
	"context"
	"fmt"
	"github.com/bitvault/bitvault/release/policystage"
	"time"

	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/build"
	"github.com/bitvault/bitvault/release/check"
	"github.com/bitvault/bitvault/release/dist"
	"github.com/bitvault/bitvault/release/plan"
	"github.com/bitvault/bitvault/release/promote"
	"github.com/bitvault/bitvault/release/publish"
	"github.com/bitvault/bitvault/release/record"
	"github.com/bitvault/bitvault/release/sbom"
	"github.com/bitvault/bitvault/release/scan"
	"github.com/bitvault/bitvault/release/sign"
	"github.com/bitvault/bitvault/release/standins"
	"github.com/bitvault/bitvault/release/verify"
)

// Release is the full pipeline:
// plan → bases → build → check → sbom → scan → publish → sign → attest → dist → verify → record → promote
// (promote: in a dry-run only, to dev against gitops.template; a real release is promoted with
// `bvrelease promote`).
func Release() []release.Stage {
	return []release.Stage{plan.Stage{}, standins.Stage{}, build.Stage{}, check.Stage{}, sbom.Stage{}, scan.Stage{},
		publish.Stage{}, sign.Stage{}, attest.Stage{}, dist.Stage{}, verify.Stage{}, policystage.Stage{}, record.Stage{}, promote.Stage{}}
}

// Publish publishes what is built: plan → check → sbom → scan → publish → sign → attest → dist → verify → record
// (check, sbom and scan skip what an earlier run already did).
func Publish() []release.Stage {
	return []release.Stage{plan.Stage{}, check.Stage{}, sbom.Stage{}, scan.Stage{}, publish.Stage{}, sign.Stage{}, attest.Stage{}, dist.Stage{}, verify.Stage{}, policystage.Stage{}, record.Stage{}}
}

// Build is the pipeline up to built images: plan → bases → build.
func Build() []release.Stage {
	return []release.Stage{plan.Stage{}, standins.Stage{}, build.Stage{}, record.Stage{}}
}

// Run runs stages on r. The record is written after each stage that got past
// planning, whatever its outcome.
func Run(ctx context.Context, r *release.Release, stages ...release.Stage) error {
	for _, s := range stages {
		start := time.Now()
		r.Logf("==> %s", s.Name())
		err := s.Run(ctx, r)
		sr := release.StageRecord{Name: s.Name(), Status: "ok", Seconds: time.Since(start).Seconds()}
		if reason, ok := release.IsSkip(err); ok {
			sr.Status, sr.Reason, err = "skipped", reason, nil
			r.Logf("    skipped: %s", reason)
		} else if err != nil {
			sr.Status, sr.Reason = "failed", firstLine(err.Error())
		}
		r.Record.Stages = setStage(r.Record.Stages, sr)
		if r.Record.Commit != "" {
			if werr := record.Write(r); werr != nil && err == nil {
				err = fmt.Errorf("write %s: %w", r.RecordPath(), werr)
			}
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name(), err)
		}
	}
	return nil
}

func setStage(stages []release.StageRecord, s release.StageRecord) []release.StageRecord {
	for i := range stages {
		if stages[i].Name == s.Name {
			stages[i] = s
			return stages
		}
	}
	return append(stages, s)
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
