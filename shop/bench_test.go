package shop_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jewelry-shop/lab/shop"
)

// benchClient returns an HTTP client with a cookie jar and enough idle
// connections for parallel benchmarks.
func benchClient(b *testing.B) *http.Client {
	b.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		b.Fatal(err)
	}
	return &http.Client{Jar: jar, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

func send(b *testing.B, c *http.Client, method, url, body string, want int) {
	b.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, r)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		b.Fatalf("%s %s: code %d, want %d", method, url, resp.StatusCode, want)
	}
}

// BenchmarkWebCatalogue measures catalogue page reads through the whole
// stack (HTTP on loopback, PostgreSQL) with parallel clients.
func BenchmarkWebCatalogue(b *testing.B) {
	e := newEnv(b)
	var n atomic.Int64
	b.SetParallelism(8) // 8 clients per CPU: the server, not the client loop, is the limit
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := benchClient(b)
		for pb.Next() {
			page := n.Add(1)%(shop.CatalogueSize/shop.PageSize) + 1
			send(b, c, "GET", fmt.Sprintf("%s/api/products?page=%d", e.web.URL, page), "", http.StatusOK)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkWebCheckout measures a purchase: add to cart (Redis) then
// checkout (one PostgreSQL transaction and a stream job), with parallel
// clients buying the same few products.
func BenchmarkWebCheckout(b *testing.B) {
	e := newEnv(b)
	if _, err := e.pg.Exec(context.Background(), "UPDATE products SET stock = 1000000000"); err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.SetParallelism(8) // 8 clients per CPU: the server, not the client loop, is the limit
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := benchClient(b)
		for pb.Next() {
			item := fmt.Sprintf(`{"product_id":%d,"quantity":1}`, n.Add(1)%10+1)
			send(b, c, "POST", e.web.URL+"/api/cart/items", item, http.StatusCreated)
			send(b, c, "POST", e.web.URL+"/api/checkout", "", http.StatusCreated)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkouts/s")
}
