package health

import (
	"context"
	"testing"
)

func TestOKDetail(t *testing.T) {
	c := New(0)
	c.Add("backlog", func(context.Context) error { return OK("3 queued") })
	rep, ok := c.Ready(context.Background())
	if !ok || rep.Checks["backlog"] != (CheckResult{Status: StatusOK, Detail: "3 queued"}) {
		t.Fatalf("ready %v %+v", ok, rep)
	}
}
