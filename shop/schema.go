package shop

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationLock is the advisory lock key that serialises migrations of
// replicas starting at the same time.
const migrationLock = 0x5140_0001

// schema is idempotent: every statement may run again on every start.
const schema = `
CREATE TABLE IF NOT EXISTS products (
	id          bigint PRIMARY KEY,
	sku         text NOT NULL UNIQUE,
	name        text NOT NULL,
	category    text NOT NULL,
	description text NOT NULL,
	price_cents bigint NOT NULL CHECK (price_cents > 0),
	stock       integer NOT NULL CHECK (stock >= 0)
);
CREATE INDEX IF NOT EXISTS products_category_id ON products (category, id);
CREATE TABLE IF NOT EXISTS users (
	id         bigserial PRIMARY KEY,
	email      text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS orders (
	id           bigserial PRIMARY KEY,
	user_id      bigint REFERENCES users (id),
	total_cents  bigint NOT NULL,
	status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fulfilled')),
	created_at   timestamptz NOT NULL DEFAULT now(),
	fulfilled_at timestamptz
);
CREATE INDEX IF NOT EXISTS orders_user_id ON orders (user_id, id);
CREATE INDEX IF NOT EXISTS orders_pending ON orders (created_at) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS order_lines (
	order_id    bigint NOT NULL REFERENCES orders (id),
	product_id  bigint NOT NULL REFERENCES products (id),
	quantity    integer NOT NULL CHECK (quantity > 0),
	price_cents bigint NOT NULL,
	PRIMARY KEY (order_id, product_id)
);
CREATE TABLE IF NOT EXISTS fulfilments (
	order_id     bigint PRIMARY KEY REFERENCES orders (id),
	worker       text NOT NULL,
	fulfilled_at timestamptz NOT NULL DEFAULT now()
);
`

// Migrate creates the schema if needed and seeds the catalogue. It is
// idempotent and safe to run from several replicas at once; products that
// exist are left alone, so stock survives restarts.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, schema); err != nil {
			return fmt.Errorf("apply schema: %w", err)
		}
		return seed(ctx, tx, Catalogue())
	})
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

func seed(ctx context.Context, tx pgx.Tx, products []Product) error {
	n := len(products)
	ids, stock := make([]int64, n), make([]int32, n)
	skus, names, cats, descs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	prices := make([]int64, n)
	for i, p := range products {
		ids[i], skus[i], names[i], cats[i], descs[i], prices[i], stock[i] = p.ID, p.SKU, p.Name, p.Category, p.Description, p.PriceCents, p.Stock
	}
	_, err := tx.Exec(ctx, `INSERT INTO products (id, sku, name, category, description, price_cents, stock)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::integer[])
		ON CONFLICT (id) DO NOTHING`, ids, skus, names, cats, descs, prices, stock)
	if err != nil {
		return fmt.Errorf("seed catalogue: %w", err)
	}
	return nil
}
