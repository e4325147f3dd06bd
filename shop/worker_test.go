package shop_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jewelry-shop/lab/shop"
)

// placeOrders checks out n guest orders and returns their ids.
func placeOrders(t *testing.T, e *env, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		c := e.client(t)
		c.do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: int64(1 + i%shop.CatalogueSize), Quantity: 1}, nil)
		var co shop.CheckoutResponse
		if code := c.do("POST", "/api/checkout", nil, &co); code != http.StatusCreated {
			t.Fatalf("checkout %d: code %d", i, code)
		}
		ids[i] = co.OrderID
	}
	return ids
}

// jobCount returns shop_worker_jobs_total{result} from reg.
func jobCount(t *testing.T, reg prometheus.Gatherer, result string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shop_worker_jobs_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return 0
}

// TestWorkerFulfilsExactlyOnceAcrossCrash crashes a worker after it
// committed a fulfilment but before it acknowledged the job, with more jobs
// read and unprocessed; a second worker must take them over and every
// order must be fulfilled exactly once.
func TestWorkerFulfilsExactlyOnceAcrossCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const orders, crashAfter = 30, 5
	ids := placeOrders(t, e, orders)

	cfg := shop.DefaultWorkerConfig()
	cfg.Consumer, cfg.Block, cfg.ClaimIdle, cfg.RetryDelay = "a", 100*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
	a := shop.NewWorker(cfg, e.pg, e.rdb, nil)
	done := 0
	var crashedOn int64
	shop.SetCrashHook(a, func(id int64) bool {
		done++
		if done == crashAfter {
			crashedOn = id
			return true
		}
		return false
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := a.Run(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("worker a: Run = %v, want the simulated crash", err)
	}
	pending, err := e.rdb.XPending(ctx, shop.FulfilmentStream, shop.FulfilmentGroup).Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worker a crashed after fulfilling order %d; %d jobs pending with it", crashedOn, pending.Count)
	if pending.Count != cfg.Batch-crashAfter+1 {
		t.Errorf("pending after the crash = %d, want %d (the unacknowledged one and the unprocessed rest of the batch)", pending.Count, cfg.Batch-crashAfter+1)
	}

	cfg.Consumer = "b"
	b := shop.NewWorker(cfg, e.pg, e.rdb, nil)
	bctx, bcancel := context.WithCancel(ctx)
	bdone := make(chan error, 1)
	go func() { bdone <- b.Run(bctx) }()
	for {
		var fulfilled int
		if err := e.pg.QueryRow(ctx, "SELECT count(*) FROM orders WHERE status = 'fulfilled'").Scan(&fulfilled); err != nil {
			t.Fatal(err)
		}
		p, err := e.rdb.XPending(ctx, shop.FulfilmentStream, shop.FulfilmentGroup).Result()
		if err != nil {
			t.Fatal(err)
		}
		if fulfilled == orders && p.Count == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after 30s: %d of %d orders fulfilled, %d jobs pending", fulfilled, orders, p.Count)
		}
		time.Sleep(50 * time.Millisecond)
	}
	bcancel()
	if err := <-bdone; err != nil {
		t.Errorf("worker b: Run = %v", err)
	}

	rows, err := e.pg.Query(ctx, "SELECT o.id, count(f.order_id) FROM orders o LEFT JOIN fulfilments f ON f.order_id = o.id GROUP BY o.id ORDER BY o.id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int{}
	for rows.Next() {
		var id int64
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		got[id] = n
	}
	want := map[int64]int{}
	for _, id := range ids {
		want[id] = 1
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fulfilments per order (-want +got):\n%s", diff)
	}
	jobs := map[string]int{
		"fulfilled": jobCount(t, a.Registry(), "fulfilled") + jobCount(t, b.Registry(), "fulfilled"),
		"duplicate": jobCount(t, b.Registry(), "duplicate"),
	}
	wantJobs := map[string]int{"fulfilled": orders, "duplicate": 1}
	if diff := cmp.Diff(wantJobs, jobs); diff != "" {
		t.Errorf("jobs by result (-want +got):\n%s", diff)
	}
}

// TestBeat checks that one of two instances leads, that leadership passes
// on when the leader stops, and the jobs.
func TestBeat(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	cfg := shop.DefaultBeatConfig()
	cfg.ID = "patient"
	patient := shop.NewBeat(cfg, e.pg, e.rdb, nil) // default idle times: nothing is old enough
	cfg.CartIdle, cfg.RequeueAfter = 0, 0
	cfg.ID = "one"
	one := shop.NewBeat(cfg, e.pg, e.rdb, nil)
	cfg.ID = "two"
	two := shop.NewBeat(cfg, e.pg, e.rdb, nil)

	c := e.client(t)
	c.do("POST", "/api/cart/items", shop.CartItemRequest{ProductID: 1, Quantity: 1}, nil)
	orderIDs := placeOrders(t, e, 1)
	if _, err := e.pg.Exec(ctx, "UPDATE products SET stock = $1 WHERE id = 2", cfg.RestockBelow-1); err != nil {
		t.Fatal(err)
	}
	before, err := e.rdb.XLen(ctx, shop.FulfilmentStream).Result()
	if err != nil {
		t.Fatal(err)
	}

	var cart shop.Cart
	if !patient.Tick(ctx) {
		t.Fatal("the only instance does not lead")
	}
	c.do("GET", "/api/cart", nil, &cart)
	if n, _ := e.rdb.XLen(ctx, shop.FulfilmentStream).Result(); len(cart.Lines) != 1 || n != before {
		t.Errorf("after a tick with default idle times: %d cart lines, stream length %d; want 1 and %d", len(cart.Lines), n, before)
	}
	rctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := patient.Run(rctx); err != nil { // gives leadership up
		t.Fatal(err)
	}

	leaders := map[string]bool{"one": one.Tick(ctx), "two": two.Tick(ctx)}
	if diff := cmp.Diff(map[string]bool{"one": true, "two": false}, leaders); diff != "" {
		t.Errorf("leaders after the first ticks (-want +got):\n%s", diff)
	}
	c.do("GET", "/api/cart", nil, &cart)
	if len(cart.Lines) != 0 {
		t.Errorf("idle cart still has %d lines after the leader's tick", len(cart.Lines))
	}
	after, err := e.rdb.XLen(ctx, shop.FulfilmentStream).Result()
	if err != nil {
		t.Fatal(err)
	}
	if after != before+int64(len(orderIDs)) {
		t.Errorf("fulfilment stream length %d after the tick, want %d (pending order re-enqueued)", after, before+1)
	}

	var stock int32
	if err := e.pg.QueryRow(ctx, "SELECT stock FROM products WHERE id = 2").Scan(&stock); err != nil {
		t.Fatal(err)
	}
	if stock != cfg.RestockTo {
		t.Errorf("stock of a nearly sold-out product after the tick = %d, want %d", stock, cfg.RestockTo)
	}

	// Run gives leadership up when it returns.
	if err := one.Run(rctx); err != nil {
		t.Fatal(err)
	}
	if !two.Tick(ctx) {
		t.Error("two does not lead after one stopped")
	}
	if one.Tick(ctx) {
		t.Error("one leads again while two holds leadership")
	}
}
