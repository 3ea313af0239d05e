package consumers_test

import (
	"context"
	"testing"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/consumers"
)

// TestSignalTenantScoped: an event wakes the waits of its tenant, all of them, once, and
// never another tenant's; a released wait is forgotten.
func TestSignalTenantScoped(t *testing.T) {
	const acme, globex = "acme", "globex"
	tests := []struct {
		name string
		// notify wakes through the bus handler (lite) or Notify (the standard watch).
		notify func(s *consumers.Signal, tenant string)
	}{
		{"bus handler", func(s *consumers.Signal, tenant string) {
			_ = s.Handle(context.Background(), bus.Message{Event: bus.Event{ID: "e1", Tenant: tenant, Type: "files.version.created"}})
		}},
		{"notify", func(s *consumers.Signal, tenant string) { s.Notify(tenant) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := consumers.NewSignal()
			a1, release1 := s.Wait(acme)
			a2, release2 := s.Wait(acme)
			g, releaseG := s.Wait(globex)
			defer releaseG()
			_, releaseGone := s.Wait(acme)
			releaseGone()
			if n := s.Waiting(acme); n != 2 {
				t.Fatalf("%d acme waits, want 2", n)
			}
			tt.notify(s, acme)
			for i, ch := range []<-chan struct{}{a1, a2} {
				select {
				case <-ch:
				default:
					t.Errorf("acme wait %d not woken", i+1)
				}
			}
			select {
			case <-g:
				t.Error("globex's wait woken by acme's event")
			default:
			}
			// Releasing a woken wait is harmless; the next event finds no acme wait.
			release1()
			release2()
			tt.notify(s, acme)
			if s.Waiting(acme) != 0 || s.Waiting(globex) != 1 {
				t.Errorf("waiting acme %d, globex %d; want 0 and 1", s.Waiting(acme), s.Waiting(globex))
			}
		})
	}
}
