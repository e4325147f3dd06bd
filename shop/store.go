package shop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PageSize is the number of products on one catalogue page and the most
// search results returned.
const PageSize = 20

// ErrNotFound is returned for an unknown product, order or user.
var ErrNotFound = errors.New("not found")

// OutOfStockError is returned by checkout when a product has less stock
// than the cart asks for; nothing was changed.
type OutOfStockError struct {
	ProductID int64
}

func (e *OutOfStockError) Error() string {
	return fmt.Sprintf("product %d is out of stock", e.ProductID)
}

// store holds the PostgreSQL queries of the shop.
type store struct {
	pg *pgxpool.Pool
}

// Page is one page of the catalogue.
type Page struct {
	Page     int       `json:"page"`
	PageSize int       `json:"page_size"`
	Total    int64     `json:"total"`
	Products []Product `json:"products"`
}

const productColumns = "id, sku, name, category, description, price_cents, stock"

func scanProducts(rows pgx.Rows) ([]Product, error) {
	products, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Product, error) {
		var p Product
		err := r.Scan(&p.ID, &p.SKU, &p.Name, &p.Category, &p.Description, &p.PriceCents, &p.Stock)
		return p, err
	})
	if products == nil {
		products = []Product{}
	}
	return products, err
}

// products returns page (from 1) of the catalogue, in id order, of one
// category or of all when category is empty.
func (s *store) products(ctx context.Context, page int, category string) (Page, error) {
	p := Page{Page: page, PageSize: PageSize}
	err := s.pg.QueryRow(ctx, "SELECT count(*) FROM products WHERE $1 = '' OR category = $1", category).Scan(&p.Total)
	if err != nil {
		return Page{}, fmt.Errorf("count products: %w", err)
	}
	rows, err := s.pg.Query(ctx, "SELECT "+productColumns+" FROM products WHERE $1 = '' OR category = $1 ORDER BY id LIMIT $2 OFFSET $3",
		category, PageSize, (page-1)*PageSize)
	if err != nil {
		return Page{}, fmt.Errorf("list products: %w", err)
	}
	if p.Products, err = scanProducts(rows); err != nil {
		return Page{}, fmt.Errorf("list products: %w", err)
	}
	return p, nil
}

// search returns up to PageSize products whose name or description
// contains q, case-insensitively.
func (s *store) search(ctx context.Context, q string) ([]Product, error) {
	pattern := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(q) + "%"
	rows, err := s.pg.Query(ctx, "SELECT "+productColumns+" FROM products WHERE name ILIKE $1 OR description ILIKE $1 ORDER BY id LIMIT $2",
		pattern, PageSize)
	if err != nil {
		return nil, fmt.Errorf("search products: %w", err)
	}
	products, err := scanProducts(rows)
	if err != nil {
		return nil, fmt.Errorf("search products: %w", err)
	}
	return products, nil
}

// product returns one product, or ErrNotFound.
func (s *store) product(ctx context.Context, id int64) (Product, error) {
	rows, err := s.pg.Query(ctx, "SELECT "+productColumns+" FROM products WHERE id = $1", id)
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", id, err)
	}
	products, err := scanProducts(rows)
	if err != nil {
		return Product{}, fmt.Errorf("get product %d: %w", id, err)
	}
	if len(products) == 0 {
		return Product{}, fmt.Errorf("get product %d: %w", id, ErrNotFound)
	}
	return products[0], nil
}

// productsByID returns the products with the given ids, by id.
func (s *store) productsByID(ctx context.Context, ids []int64) (map[int64]Product, error) {
	rows, err := s.pg.Query(ctx, "SELECT "+productColumns+" FROM products WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("get products: %w", err)
	}
	products, err := scanProducts(rows)
	if err != nil {
		return nil, fmt.Errorf("get products: %w", err)
	}
	m := make(map[int64]Product, len(products))
	for _, p := range products {
		m[p.ID] = p
	}
	return m, nil
}

// userByEmail returns the id of the user with email, creating the user if
// needed.
func (s *store) userByEmail(ctx context.Context, email string) (int64, error) {
	var id int64
	err := s.pg.QueryRow(ctx, `INSERT INTO users (email) VALUES ($1)
		ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id`, email).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("upsert user: %w", err)
	}
	return id, nil
}

// Line is one line of a cart or an order.
type Line struct {
	ProductID  int64  `json:"product_id"`
	Name       string `json:"name"`
	Quantity   int64  `json:"quantity"`
	PriceCents int64  `json:"price_cents"`
}

// Order is a placed order.
type Order struct {
	ID          int64  `json:"id"`
	Status      string `json:"status"`
	TotalCents  int64  `json:"total_cents"`
	CreatedAt   string `json:"created_at"`
	FulfilledAt string `json:"fulfilled_at,omitempty"`
	Lines       []Line `json:"lines"`
}

// checkout places an order for the quantities in cart (product id →
// quantity) in one transaction: it decrements stock, refusing to go below
// zero, and creates the order and its lines. userID 0 is a guest.
func (s *store) checkout(ctx context.Context, userID int64, cart map[int64]int64) (orderID, total int64, err error) {
	ids := make([]int64, 0, len(cart))
	for id := range cart {
		ids = append(ids, id)
	}
	// Lock rows in one order so concurrent checkouts cannot deadlock.
	slices.Sort(ids)
	prices := make([]int64, len(ids))
	qty := make([]int64, len(ids))
	err = pgx.BeginFunc(ctx, s.pg, func(tx pgx.Tx) error {
		total = 0
		for i, id := range ids {
			qty[i] = cart[id]
			err := tx.QueryRow(ctx, "UPDATE products SET stock = stock - $2 WHERE id = $1 AND stock >= $2 RETURNING price_cents",
				id, qty[i]).Scan(&prices[i])
			if errors.Is(err, pgx.ErrNoRows) {
				return &OutOfStockError{ProductID: id}
			}
			if err != nil {
				return fmt.Errorf("take stock of product %d: %w", id, err)
			}
			total += prices[i] * qty[i]
		}
		var user *int64
		if userID != 0 {
			user = &userID
		}
		if err := tx.QueryRow(ctx, "INSERT INTO orders (user_id, total_cents) VALUES ($1, $2) RETURNING id", user, total).Scan(&orderID); err != nil {
			return fmt.Errorf("create order: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO order_lines (order_id, product_id, quantity, price_cents)
			SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[])`, orderID, ids, qty, prices)
		if err != nil {
			return fmt.Errorf("create order lines: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("checkout: %w", err)
	}
	return orderID, total, nil
}

// orderCount returns the number of orders of a user.
func (s *store) orderCount(ctx context.Context, userID int64) (int64, error) {
	var n int64
	if err := s.pg.QueryRow(ctx, "SELECT count(*) FROM orders WHERE user_id = $1", userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count orders: %w", err)
	}
	return n, nil
}

// orders returns the latest 50 orders of a user with their lines, newest
// first.
func (s *store) orders(ctx context.Context, userID int64) ([]Order, error) {
	rows, err := s.pg.Query(ctx, `SELECT o.id, o.status, o.total_cents,
			to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
			coalesce(to_char(o.fulfilled_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), ''),
			l.product_id, p.name, l.quantity, l.price_cents
		FROM (SELECT * FROM orders WHERE user_id = $1 ORDER BY id DESC LIMIT 50) o
		JOIN order_lines l ON l.order_id = o.id
		JOIN products p ON p.id = l.product_id
		ORDER BY o.id DESC, l.product_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	defer rows.Close()
	orders := []Order{}
	for rows.Next() {
		var o Order
		var l Line
		if err := rows.Scan(&o.ID, &o.Status, &o.TotalCents, &o.CreatedAt, &o.FulfilledAt, &l.ProductID, &l.Name, &l.Quantity, &l.PriceCents); err != nil {
			return nil, fmt.Errorf("list orders: %w", err)
		}
		if n := len(orders); n == 0 || orders[n-1].ID != o.ID {
			orders = append(orders, o)
		}
		last := &orders[len(orders)-1]
		last.Lines = append(last.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	return orders, nil
}
