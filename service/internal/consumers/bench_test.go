package consumers_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/outbox"
	"github.com/bitvault/bitvault/service/internal/search"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

// The indexing pipeline, measured end to end on real components: commits through the API
// (Postgres, versitygw S3), the outbox relay, the bus (in-process as in lite, or NATS
// JetStream as in standard) and the indexer, which fetches each file's bytes from S3 and
// writes its text to node_content, where search reads it.
//
//	go test ./internal/consumers -run '^$' -bench Index -benchtime 1x
//
// BenchmarkIndexThroughput: benchFiles text files are committed with the pipeline stopped,
// then it is started and timed until all are indexed: events/s through outbox → bus →
// indexer.
//
// BenchmarkIndexLag: commits at a steady rate (benchRate/s for benchSteady) with the pipeline
// running; the lag of each file is from the moment its commit returned to the client to the
// first search (search.Service, as the API runs it) that finds it by a word of its content,
// polled every millisecond, reported as p50/p99 in ms.
const (
	benchFiles  = 1000
	benchRate   = 20
	benchSteady = 15 * time.Second
)

var benchBuses = []string{"mem", "jetstream"}

func benchEnv(b *testing.B) (*apitest.Env, apitest.User) {
	e := apitest.NewWithStore(b, func(t testing.TB, _ *http.ServeMux, _ string) storage.ObjectStore { return s3test.New(t).Store(t) })
	owner, _, _ := e.Tenant("acme")
	return e, owner
}

func benchBus(b *testing.B, kind string) bus.Bus {
	switch kind {
	case "jetstream":
		js, err := bus.ConnectJetStream(context.Background(), natstest.New(b).URL(), bus.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(js.Close)
		return js
	default:
		m := bus.NewMem(bus.Options{})
		b.Cleanup(m.Close)
		return m
	}
}

// startPipeline runs the relay and the indexer (with the other consumers of RunWith) until
// the returned stop is called.
func startPipeline(b *testing.B, e *apitest.Env, bs bus.Bus, relay *outbox.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	relay.Pool, relay.Bus = e.Pool, bs
	wg.Go(func() { _ = relay.Run(ctx) })
	wg.Go(func() { _ = consumers.RunWith(ctx, bs, e.Pool, consumers.Options{Files: e.Files}) })
	return func() { cancel(); wg.Wait() }
}

func textFile(i int) []byte {
	return fmt.Appendf(nil, "minutes of meeting %d: the quarterly roadmap, item w%06d, and other plain words\n", i, i)
}

func indexed(b *testing.B, e *apitest.Env) int {
	var n int
	if err := e.Super.QueryRow(context.Background(), "SELECT count(*) FROM node_content").Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

func waitIndexed(b *testing.B, e *apitest.Env, want int) {
	deadline := time.Now().Add(5 * time.Minute)
	for indexed(b, e) < want {
		if time.Now().After(deadline) {
			b.Fatalf("indexed %d of %d files after 5 minutes", indexed(b, e), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkIndexThroughput(b *testing.B) {
	for _, kind := range benchBuses {
		b.Run("bus="+kind, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				e, owner := benchEnv(b)
				for i := range benchFiles {
					e.Upload(owner, fmt.Sprintf("/notes/n%06d.txt", i), textFile(i))
				}
				bs := benchBus(b, kind)
				b.StartTimer()
				start := time.Now()
				stop := startPipeline(b, e, bs, &outbox.Relay{})
				waitIndexed(b, e, benchFiles)
				total += time.Since(start)
				stop()
			}
			b.ReportMetric(float64(benchFiles*b.N)/total.Seconds(), "events/s")
		})
	}
}

func BenchmarkIndexLag(b *testing.B) {
	relays := []struct {
		name  string
		relay func() *outbox.Relay
	}{
		{"notify", func() *outbox.Relay { return &outbox.Relay{} }},
		// The baseline: the relay before migration 0012, polling every 200 ms.
		{"poll200ms", func() *outbox.Relay { return &outbox.Relay{NoNotify: true, Interval: 200 * time.Millisecond} }},
	}
	for _, kind := range benchBuses {
		for _, r := range relays {
			b.Run("bus="+kind+"/relay="+r.name, func(b *testing.B) { benchLag(b, kind, r.relay) })
		}
	}
}

func benchLag(b *testing.B, kind string, relay func() *outbox.Relay) {
	var lags []float64
	for range b.N {
		e, owner := benchEnv(b)
		stop := startPipeline(b, e, benchBus(b, kind), relay())
		srch := searcher(b, e)
		var mu sync.Mutex
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / benchRate)
		for i, end := 0, time.Now().Add(benchSteady); time.Now().Before(end); i++ {
			<-tick.C
			e.Upload(owner, fmt.Sprintf("/notes/n%06d.txt", i), textFile(i))
			committed := time.Now()
			wg.Go(func() {
				lag := waitSearchable(b, srch, owner, fmt.Sprintf("w%06d", i), committed)
				mu.Lock()
				lags = append(lags, float64(lag.Microseconds())/1000)
				mu.Unlock()
			})
		}
		tick.Stop()
		wg.Wait()
		stop()
	}
	if len(lags) == 0 {
		b.Fatal("no file became searchable")
	}
	sort.Float64s(lags)
	b.ReportMetric(percentile(lags, 0.50), "p50-ms")
	b.ReportMetric(percentile(lags, 0.99), "p99-ms")
	b.ReportMetric(lags[len(lags)-1], "max-ms")
	b.ReportMetric(float64(len(lags))/float64(b.N)/benchSteady.Seconds(), "commits/s")
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(float64(len(sorted)-1)*p)]
}

func searcher(b *testing.B, e *apitest.Env) *search.Service {
	sh, err := sharing.New(e.Pool, e.Identity, e.Store, sharing.Config{Now: e.Clock.Now}, e.Logger)
	if err != nil {
		b.Fatal(err)
	}
	s, err := search.New(e.Pool, sh, e.Logger)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// waitSearchable polls search for word until it finds a node, and returns the time since
// committed.
func waitSearchable(b *testing.B, s *search.Service, u apitest.User, word string, committed time.Time) time.Duration {
	deadline := committed.Add(time.Minute)
	for {
		page, err := s.Search(context.Background(), u.P, word, "", 1)
		if err != nil {
			b.Error(err)
			return 0
		}
		if len(page.Results) > 0 {
			return time.Since(committed)
		}
		if time.Now().After(deadline) {
			b.Errorf("%s not searchable a minute after its commit", word)
			return 0
		}
		time.Sleep(time.Millisecond)
	}
}
