package pgtest

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Scan is one node of a query plan that reads a table.
type Scan struct {
	Type     string // "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", …
	Relation string
	Index    string // for index scans
}

// Scans runs EXPLAIN (FORMAT JSON) of sql in tx (so under the role and tenant settings the
// caller set) and returns the plan's nodes that read relation (all tables when "") plus the
// plan itself for error messages.
func Scans(ctx context.Context, tx pgx.Tx, relation, sql string, args ...any) ([]Scan, string, error) {
	var plan []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+sql, args...).Scan(&plan); err != nil {
		return nil, "", fmt.Errorf("explain: %w", err)
	}
	var doc []struct{ Plan planNode }
	if err := json.Unmarshal(plan, &doc); err != nil || len(doc) != 1 {
		return nil, string(plan), fmt.Errorf("explain: unexpected plan document: %v", err)
	}
	var out []Scan
	doc[0].Plan.walk(func(n planNode) {
		if n.Relation != "" && (relation == "" || n.Relation == relation) {
			out = append(out, Scan{Type: n.Type, Relation: n.Relation, Index: n.Index})
		}
	})
	return out, string(plan), nil
}

type planNode struct {
	Type     string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Plans    []planNode `json:"Plans"`
}

func (n planNode) walk(fn func(planNode)) {
	fn(n)
	for _, c := range n.Plans {
		c.walk(fn)
	}
}
