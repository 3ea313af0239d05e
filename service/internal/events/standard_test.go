package events

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/health"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
)

func TestMain(m *testing.M) { os.Exit(apitest.Main(m)) }

// TestStandardSignalsEveryReplica: in the standard profile each bitvaultd replica watches
// JetStream for itself: a commit wakes the long polls of its tenant on every replica (a
// durable consumer shared by the replicas would wake one), never another tenant's.
func TestStandardSignalsEveryReplica(t *testing.T) {
	e := apitest.New(t)
	cfg := Config{Profile: ProfileStd, NATSURL: natstest.New(t).URL(), MaxLag: time.Minute}
	acme, _, _ := e.Tenant("acme")
	globex, _, _ := e.Tenant("globex")
	var acmeWaits, globexWaits []<-chan struct{}
	for range 2 {
		stop, signal, err := StartServer(context.Background(), cfg, e.Pool, health.New(0), e.Logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		a, releaseA := signal.Wait(acme.P.TenantID)
		g, releaseG := signal.Wait(globex.P.TenantID)
		t.Cleanup(func() { releaseA(); releaseG() })
		acmeWaits, globexWaits = append(acmeWaits, a), append(globexWaits, g)
	}
	e.Upload(acme, "/a.txt", []byte("alpha"))
	for i, ch := range acmeWaits {
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("replica %d: acme's wait not woken by its commit", i)
		}
	}
	for i, ch := range globexWaits {
		select {
		case <-ch:
			t.Errorf("replica %d: globex's wait woken by acme's commit", i)
		default:
		}
	}
}

// TestRunWorkerStandardOnly: in lite bitvaultd consumes, so the worker refuses to.
func TestRunWorkerStandardOnly(t *testing.T) {
	if _, _, err := RunWorker(context.Background(), Config{Profile: ProfileLite}, nil, health.New(0), nil); err == nil {
		t.Fatal("RunWorker accepted the lite profile")
	}
}
