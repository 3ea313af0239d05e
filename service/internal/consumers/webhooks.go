package consumers

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

// Webhooks consumer name and filter: every event.
const (
	WebhooksName   = "webhooks"
	WebhooksFilter = "bitvault.>"
)

// WebhookFanout turns each event into pending deliveries to the tenant's webhook endpoints
// (webhooks.Service.Enqueue), in the transaction of its ledger row; the webhooks dispatcher
// sends them. Delivery failures never reach the bus (nor the commit path): they are retried
// on the webhooks schedule from the deliveries table.
type WebhookFanout struct {
	Pool     *pgxpool.Pool
	Webhooks *webhooks.Service
}

// Handle is the fan-out's bus.Handler.
func (f WebhookFanout) Handle(ctx context.Context, msg bus.Message) error {
	err := db.WithTenant(ctx, f.Pool, msg.Tenant, func(tx pgx.Tx) error {
		first, err := Record(ctx, tx, msg.Tenant, WebhooksName, msg.ID)
		if err != nil || !first {
			return err
		}
		_, err = f.Webhooks.Enqueue(ctx, tx, webhooks.Event{ID: msg.ID, Tenant: msg.Tenant, Type: msg.Type, Payload: msg.Payload})
		return err
	})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	return nil
}
