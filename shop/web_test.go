package shop_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/shop"
)

func TestJourneys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	catalogue := shop.Catalogue()

	t.Run("browse", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		tests := []struct {
			query     string
			wantCode  int
			wantTotal int64
			wantFirst int64
			category  string
		}{
			{query: "", wantCode: 200, wantTotal: shop.CatalogueSize, wantFirst: 1},
			{query: "?page=2", wantCode: 200, wantTotal: shop.CatalogueSize, wantFirst: 21},
			{query: "?category=rings", wantCode: 200, wantTotal: shop.CatalogueSize / 6, wantFirst: 1, category: "rings"},
			{query: "?category=brooches&page=3", wantCode: 200, wantTotal: shop.CatalogueSize / 6, wantFirst: 6 + 2*20*6, category: "brooches"},
			{query: "?page=0", wantCode: 400},
			{query: "?page=x", wantCode: 400},
		}
		for _, tt := range tests {
			var page shop.Page
			code := c.do("GET", "/api/products"+tt.query, nil, &page)
			if code != tt.wantCode {
				t.Errorf("GET /api/products%s: code %d, want %d", tt.query, code, tt.wantCode)
				continue
			}
			if code != 200 {
				continue
			}
			if page.Total != tt.wantTotal || len(page.Products) != shop.PageSize || page.Products[0].ID != tt.wantFirst {
				t.Errorf("GET /api/products%s: total %d, %d products from id %d; want total %d, %d from id %d",
					tt.query, page.Total, len(page.Products), page.Products[0].ID, tt.wantTotal, shop.PageSize, tt.wantFirst)
			}
			for _, p := range page.Products {
				if tt.category != "" && p.Category != tt.category {
					t.Errorf("GET /api/products%s: product %d in category %q", tt.query, p.ID, p.Category)
				}
			}
		}
	})

	t.Run("search", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		var got struct{ Products []shop.Product }
		if code := c.do("GET", "/api/search?q=sapphire", nil, &got); code != 200 {
			t.Fatalf("search: code %d", code)
		}
		var want []shop.Product
		for _, p := range catalogue {
			if strings.Contains(strings.ToLower(p.Name+p.Description), "sapphire") && len(want) < shop.PageSize {
				want = append(want, p)
			}
		}
		if diff := cmp.Diff(want, got.Products); diff != "" {
			t.Errorf("search sapphire (-want +got):\n%s", diff)
		}
		if code := c.do("GET", "/api/search?q=%25", nil, &got); code != 200 || len(got.Products) != 0 {
			t.Errorf("search %%: code %d, %d products, want 200 and none (wildcards are literal)", code, len(got.Products))
		}
		if code := c.do("GET", "/api/search?q=", nil, nil); code != 400 {
			t.Errorf("empty search: code %d, want 400", code)
		}
	})

	t.Run("product", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		var got shop.Product
		if code := c.do("GET", "/api/products/7", nil, &got); code != 200 {
			t.Fatalf("product 7: code %d", code)
		}
		if diff := cmp.Diff(catalogue[6], got); diff != "" {
			t.Errorf("product 7 (-want +got):\n%s", diff)
		}
		for path, want := range map[string]int{"/api/products/99999": 404, "/api/products/abc": 400} {
			if code := c.do("GET", path, nil, nil); code != want {
				t.Errorf("GET %s: code %d, want %d", path, code, want)
			}
		}
	})

	t.Run("cart and checkout as guest", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		var before shop.Product
		c.do("GET", "/api/products/3", nil, &before)
		adds := []shop.CartItemRequest{{ProductID: 3, Quantity: 2}, {ProductID: 5, Quantity: 1}, {ProductID: 3, Quantity: 1}}
		for _, a := range adds {
			if code := c.do("POST", "/api/cart/items", a, nil); code != http.StatusCreated {
				t.Fatalf("add %+v: code %d", a, code)
			}
		}
		if !hasSessionCookie(c) {
			t.Errorf("no %q cookie after adding to the cart", shop.SessionCookie)
		}
		var cart shop.Cart
		c.do("GET", "/api/cart", nil, &cart)
		want := shop.Cart{
			Lines: []shop.Line{
				{ProductID: 3, Name: catalogue[2].Name, Quantity: 3, PriceCents: catalogue[2].PriceCents},
				{ProductID: 5, Name: catalogue[4].Name, Quantity: 1, PriceCents: catalogue[4].PriceCents},
			},
			TotalCents: 3*catalogue[2].PriceCents + catalogue[4].PriceCents,
		}
		if diff := cmp.Diff(want, cart); diff != "" {
			t.Errorf("cart (-want +got):\n%s", diff)
		}
		for _, bad := range []shop.CartItemRequest{{ProductID: 3, Quantity: 11}, {ProductID: 3, Quantity: -1}} {
			if code := c.do("POST", "/api/cart/items", bad, nil); code != 400 {
				t.Errorf("add %+v: code %d, want 400", bad, code)
			}
		}
		if code := c.do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: 99999, Quantity: 1}, nil); code != 404 {
			t.Errorf("add unknown product: code %d, want 404", code)
		}
		var co shop.CheckoutResponse
		if code := c.do("POST", "/api/checkout", nil, &co); code != http.StatusCreated {
			t.Fatalf("checkout: code %d", code)
		}
		if co.OrderID == 0 || co.TotalCents != want.TotalCents {
			t.Errorf("checkout = %+v, want an order id and total %d", co, want.TotalCents)
		}
		var after shop.Product
		c.do("GET", "/api/products/3", nil, &after)
		if after.Stock != before.Stock-3 {
			t.Errorf("stock of product 3 after checkout = %d, want %d", after.Stock, before.Stock-3)
		}
		c.do("GET", "/api/cart", nil, &cart)
		if len(cart.Lines) != 0 {
			t.Errorf("cart after checkout has %d lines, want none", len(cart.Lines))
		}
		if code := c.do("POST", "/api/checkout", nil, nil); code != 400 {
			t.Errorf("checkout of an empty cart: code %d, want 400", code)
		}
		if !jobQueued(t, e, co.OrderID) {
			t.Errorf("no fulfilment job for order %d in %s", co.OrderID, shop.FulfilmentStream)
		}
	})

	t.Run("login, account and order history", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		if code := c.do("GET", "/api/account", nil, nil); code != 401 {
			t.Errorf("account before login: code %d, want 401", code)
		}
		if code := c.do("POST", "/api/login", map[string]string{"email": "not-an-email"}, nil); code != 400 {
			t.Errorf("login with a bad email: code %d, want 400", code)
		}
		// The cart filled before logging in survives the login.
		c.do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: 12, Quantity: 2}, nil)
		var acct shop.Account
		if code := c.do("POST", "/api/login", shop.LoginRequest{Email: "Ada@Example.com"}, &acct); code != 200 {
			t.Fatalf("login: code %d", code)
		}
		if acct.Email != "ada@example.com" || acct.UserID == 0 {
			t.Errorf("login = %+v, want a user id and the lower-case email", acct)
		}
		var co shop.CheckoutResponse
		if code := c.do("POST", "/api/checkout", nil, &co); code != http.StatusCreated {
			t.Fatalf("checkout: code %d", code)
		}
		var got shop.Account
		c.do("GET", "/api/account", nil, &got)
		if diff := cmp.Diff(shop.Account{UserID: acct.UserID, Email: "ada@example.com", OrderCount: 1}, got); diff != "" {
			t.Errorf("account (-want +got):\n%s", diff)
		}
		var orders struct{ Orders []shop.Order }
		if code := c.do("GET", "/api/orders", nil, &orders); code != 200 {
			t.Fatalf("orders: code %d", code)
		}
		if len(orders.Orders) != 1 {
			t.Fatalf("got %d orders, want 1", len(orders.Orders))
		}
		o := orders.Orders[0]
		wantLines := []shop.Line{{ProductID: 12, Name: catalogue[11].Name, Quantity: 2, PriceCents: catalogue[11].PriceCents}}
		if o.ID != co.OrderID || o.Status != "pending" || o.TotalCents != co.TotalCents || !cmp.Equal(wantLines, o.Lines) {
			t.Errorf("order = %+v, want id %d, pending, total %d, lines %+v", o, co.OrderID, co.TotalCents, wantLines)
		}
		// Logging in again from another client finds the same user.
		other := e.client(t)
		var again shop.Account
		other.do("POST", "/api/login", shop.LoginRequest{Email: "ada@example.com"}, &again)
		if diff := cmp.Diff(shop.Account{UserID: acct.UserID, Email: "ada@example.com", OrderCount: 1}, again); diff != "" {
			t.Errorf("second login from another client (-want +got):\n%s", diff)
		}
	})

	t.Run("probes and metrics", func(t *testing.T) {
		t.Parallel()
		c := e.client(t)
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/healthz/stores": 200, "/metrics": 200} {
			if code := c.do("GET", path, nil, nil); code != want {
				t.Errorf("GET %s: code %d, want %d", path, code, want)
			}
		}
	})
}

func hasSessionCookie(c *client) bool {
	u, _ := url.Parse(c.base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == shop.SessionCookie && ck.Value != "" {
			return true
		}
	}
	return false
}

// jobQueued reports whether the fulfilment stream holds a job for order.
func jobQueued(t *testing.T, e *env, order int64) bool {
	t.Helper()
	msgs, err := e.rdb.XRange(context.Background(), shop.FulfilmentStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Values["order_id"] == strconv.FormatInt(order, 10) {
			return true
		}
	}
	return false
}

// TestCheckoutNeverOversells races more buyers than there is stock.
func TestCheckoutNeverOversells(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	const stock, buyers, productID = 7, 40, 42
	if _, err := e.pg.Exec(ctx, "UPDATE products SET stock = $1 WHERE id = $2", stock, productID); err != nil {
		t.Fatal(err)
	}
	clients := make([]*client, buyers)
	for i := range clients {
		clients[i] = e.client(t)
		// Two products per cart, so that transactions lock several rows.
		clients[i].do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: int64(1 + i%3), Quantity: 1}, nil)
		clients[i].do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: productID, Quantity: 1}, nil)
	}
	codes := make([]int, buyers)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() { codes[i] = c.do("POST", "/api/checkout", nil, nil) })
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if diff := cmp.Diff(map[int]int{http.StatusCreated: stock, http.StatusConflict: buyers - stock}, count); diff != "" {
		t.Errorf("checkout status codes (-want +got):\n%s", diff)
	}
	var left, sold int64
	if err := e.pg.QueryRow(ctx, "SELECT stock FROM products WHERE id = $1", productID).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if err := e.pg.QueryRow(ctx, "SELECT coalesce(sum(quantity), 0) FROM order_lines WHERE product_id = $1", productID).Scan(&sold); err != nil {
		t.Fatal(err)
	}
	if left != 0 || sold != stock {
		t.Errorf("after the race: stock %d, sold %d; want 0 and %d", left, sold, stock)
	}
}
