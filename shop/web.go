package shop

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// SessionCookie is the name of the cookie that carries the session id.
const SessionCookie = "session"

// WebConfig configures the web mode.
type WebConfig struct {
	// RequestTimeout bounds the store work of one request.
	RequestTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// SessionTTL is how long an unused session and its cart live.
	SessionTTL time.Duration
	// MaxQuantity is the most of one product a single add to cart may ask for.
	MaxQuantity int64
}

// DefaultWebConfig returns the defaults documented in the package doc.
func DefaultWebConfig() WebConfig {
	return WebConfig{
		RequestTimeout:  5 * time.Second,
		ShutdownTimeout: 10 * time.Second,
		SessionTTL:      24 * time.Hour,
		MaxQuantity:     10,
	}
}

// Web is the HTTP API of the shop. Create it with NewWeb; it is an
// http.Handler.
type Web struct {
	cfg      WebConfig
	log      *slog.Logger
	store    *store
	sessions *sessions
	rdb      redis.UniversalClient
	pg       *pgxpool.Pool
	metrics  *webMetrics
	registry *prometheus.Registry
	handler  http.Handler
	draining atomic.Bool
	// starting is set while ServeWhen waits for the schema: the API and
	// /readyz answer 503, /healthz 200.
	starting atomic.Bool
}

// NewWeb returns the web API over a PostgreSQL pool (migrated with
// Migrate) and a Redis client. A nil logger discards logs; access logs
// are written at Info level.
func NewWeb(cfg WebConfig, pg *pgxpool.Pool, rdb redis.UniversalClient, log *slog.Logger) *Web {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := newRegistry()
	w := &Web{
		cfg:      cfg,
		log:      log,
		store:    &store{pg: pg},
		sessions: &sessions{rdb: rdb, ttl: cfg.SessionTTL},
		rdb:      rdb,
		pg:       pg,
		metrics:  newWebMetrics(reg),
		registry: reg,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", w.healthz)
	mux.HandleFunc("GET /readyz", w.readyz)
	mux.HandleFunc("GET /healthz/stores", w.storesHealth)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/categories", w.categories)
	mux.HandleFunc("GET /api/products", w.listProducts)
	mux.HandleFunc("GET /api/products/{id}", w.getProduct)
	mux.HandleFunc("GET /api/search", w.search)
	mux.HandleFunc("POST /api/cart/items", w.addToCart)
	mux.HandleFunc("GET /api/cart", w.viewCart)
	mux.HandleFunc("POST /api/checkout", w.checkout)
	mux.HandleFunc("POST /api/login", w.login)
	mux.HandleFunc("GET /api/account", w.account)
	mux.HandleFunc("GET /api/orders", w.orders)
	w.handler = w.observe(w.gate(mux))
	return w
}

// gate answers 503 to every request but the probes' and the metrics' while
// the pod is starting (ServeWhen).
func (w *Web) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.starting.Load() {
			switch r.URL.Path {
			case "/healthz", "/readyz", "/healthz/stores", "/metrics":
			default:
				writeJSON(rw, http.StatusServiceUnavailable, errorBody{Error: "starting: the schema is not migrated yet"})
				return
			}
		}
		next.ServeHTTP(rw, r)
	})
}

// ServeHTTP serves the API.
func (w *Web) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.handler.ServeHTTP(rw, r) }

// Serve serves the API on l until ctx is cancelled, then shuts down
// gracefully: /readyz turns unready, and requests in flight get up to
// ShutdownTimeout to finish.
func (w *Web) Serve(ctx context.Context, l net.Listener) error {
	return serve(ctx, l, w, w.cfg.ShutdownTimeout, &w.draining, w.log)
}

// ServeWhen serves on l at once, as Serve, but the API only once ready
// (the schema's migration) has returned nil: until then /readyz and the API
// answer 503 and /healthz 200, so that a pod that waits for PostgreSQL at
// start (its primary failing over, or down) is alive but not ready, and its
// liveness probe does not restart it over and over. An error of ready ends
// the serving with it.
func (w *Web) ServeWhen(ctx context.Context, l net.Listener, ready func(context.Context) error) error {
	w.starting.Store(true)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	failed := make(chan error, 1)
	go func() {
		if err := ready(sctx); err != nil {
			if ctx.Err() == nil {
				failed <- err
			}
			cancel()
			return
		}
		w.starting.Store(false)
		w.log.Info("ready: serving the API")
	}()
	err := w.Serve(sctx, l)
	select {
	case rerr := <-failed:
		return errors.Join(rerr, err)
	default:
		return err
	}
}

// Serve serves h on l until ctx is cancelled, then shuts down gracefully,
// giving requests in flight up to shutdownTimeout. The worker, beat and
// probe modes use it for their operational endpoints.
func Serve(ctx context.Context, l net.Listener, h http.Handler, shutdownTimeout time.Duration, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return serve(ctx, l, h, shutdownTimeout, new(atomic.Bool), log)
}

// OpsHandler serves the operational endpoints of the worker and beat
// modes: /healthz (alive), /readyz (the stores that are not nil answer
// within timeout) and /metrics (reg).
func OpsHandler(reg prometheus.Gatherer, pg *pgxpool.Pool, rdb redis.UniversalClient, timeout time.Duration) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		status := readiness(r.Context(), timeout, pg, rdb)
		code := http.StatusOK
		for _, v := range status {
			if v != "ok" {
				code = http.StatusServiceUnavailable
			}
		}
		writeJSON(rw, code, status)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// serve runs an HTTP server on l until ctx is done, then shuts it down.
func serve(ctx context.Context, l net.Listener, h http.Handler, shutdownTimeout time.Duration, draining *atomic.Bool, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("listening", "addr", l.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	log.Info("shutting down", "timeout", shutdownTimeout.String())
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}

// statusRecorder remembers the status code and body size of a response.
type statusRecorder struct {
	http.ResponseWriter
	code  int
	bytes int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

// observe records metrics and writes one access log line per request.
func (w *Web) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: rw}
		next.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		elapsed := time.Since(start)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		w.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Inc()
		w.metrics.duration.WithLabelValues(route).Observe(elapsed.Seconds())
		w.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", route),
			slog.Int("status", rec.code),
			slog.Int("bytes", rec.bytes),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// writeJSON writes v as JSON with status code.
func writeJSON(rw http.ResponseWriter, code int, v any) {
	rw.Header().Set("Content-Type", "application/json")
	rw.WriteHeader(code)
	_ = json.NewEncoder(rw).Encode(v)
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error     string `json:"error"`
	ProductID int64  `json:"product_id,omitempty"`
}

// fail answers an error: client errors as given, store errors as 503
// (the stores are what fails in a failover; clients may retry).
func (w *Web) fail(rw http.ResponseWriter, r *http.Request, code int, err error) {
	if code >= 500 {
		w.log.LogAttrs(r.Context(), slog.LevelWarn, "request failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	}
	writeJSON(rw, code, errorBody{Error: err.Error()})
}

func (w *Web) storeFailed(rw http.ResponseWriter, r *http.Request, err error) {
	w.fail(rw, r, http.StatusServiceUnavailable, err)
}

func (w *Web) healthz(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether this pod can serve: it is up (the schema is
// migrated, see ServeWhen) and not shutting down. It does not ask the
// stores: readiness gates the pod's traffic, and a store fault would take
// every web pod out of the Service at once, so that nginx answered 502
// even for requests that need no store, and recovery waited for the
// readiness probes. /healthz/stores reports the stores.
func (w *Web) readyz(rw http.ResponseWriter, _ *http.Request) {
	if w.draining.Load() {
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	if w.starting.Load() {
		writeJSON(rw, http.StatusServiceUnavailable, map[string]string{"status": "starting: migrating the schema"})
		return
	}
	writeJSON(rw, http.StatusOK, map[string]string{"status": "ok"})
}

// storesHealth pings both stores: 200 when both answer, else 503, with
// "ok" or the error per store.
func (w *Web) storesHealth(rw http.ResponseWriter, r *http.Request) {
	status := readiness(r.Context(), w.cfg.RequestTimeout, w.pg, w.rdb)
	code := http.StatusOK
	for _, v := range status {
		if v != "ok" {
			code = http.StatusServiceUnavailable
		}
	}
	writeJSON(rw, code, status)
}

// readiness pings each store that is set and reports "ok" or the error.
func readiness(ctx context.Context, timeout time.Duration, pg *pgxpool.Pool, rdb redis.UniversalClient) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	status := map[string]string{}
	if pg != nil {
		status["postgres"] = "ok"
		if err := pg.Ping(ctx); err != nil {
			status["postgres"] = err.Error()
		}
	}
	if rdb != nil {
		status["redis"] = "ok"
		if err := rdb.Ping(ctx).Err(); err != nil {
			status["redis"] = err.Error()
		}
	}
	return status
}

func (w *Web) categories(rw http.ResponseWriter, _ *http.Request) {
	writeJSON(rw, http.StatusOK, map[string][]string{"categories": Categories()})
}

func (w *Web) listProducts(rw http.ResponseWriter, r *http.Request) {
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			w.fail(rw, r, http.StatusBadRequest, fmt.Errorf("page %q is not a number from 1", v))
			return
		}
		page = n
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	p, err := w.store.products(ctx, page, r.URL.Query().Get("category"))
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, p)
}

func (w *Web) getProduct(rw http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		w.fail(rw, r, http.StatusBadRequest, fmt.Errorf("product id %q is not a number", r.PathValue("id")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	p, err := w.store.product(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		w.fail(rw, r, http.StatusNotFound, err)
	case err != nil:
		w.storeFailed(rw, r, err)
	default:
		writeJSON(rw, http.StatusOK, p)
	}
}

func (w *Web) search(rw http.ResponseWriter, r *http.Request) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || len(q) > 100 {
		w.fail(rw, r, http.StatusBadRequest, errors.New("query q must have 1 to 100 characters"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	products, err := w.store.search(ctx, q)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string]any{"query": q, "products": products})
}

// session returns the session named by the request's cookie; ok is false
// when there is none.
func (w *Web) session(ctx context.Context, r *http.Request) (sess session, ok bool, err error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || !validSessionID(c.Value) {
		return session{}, false, nil
	}
	return w.sessions.get(ctx, c.Value)
}

// ensureSession returns the request's session, creating one (and setting
// its cookie) when there is none.
func (w *Web) ensureSession(ctx context.Context, rw http.ResponseWriter, r *http.Request) (session, error) {
	sess, ok, err := w.session(ctx, r)
	if err != nil || ok {
		return sess, err
	}
	sess = session{ID: newSessionID()}
	if err := w.sessions.save(ctx, sess); err != nil {
		return session{}, err
	}
	w.setCookie(rw, r, sess.ID)
	return sess, nil
}

func (w *Web) setCookie(rw http.ResponseWriter, r *http.Request, id string) {
	http.SetCookie(rw, &http.Cookie{
		Name:     SessionCookie,
		Value:    id,
		Path:     "/",
		MaxAge:   int(w.cfg.SessionTTL.Seconds()),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteLaxMode,
	})
}

// decode reads a JSON body of at most 64 KiB into v, rejecting unknown
// fields.
func decode(rw http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(rw, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

// CartItemRequest is the body of POST /api/cart/items.
type CartItemRequest struct {
	ProductID int64 `json:"product_id"`
	Quantity  int64 `json:"quantity"`
}

// Cart is the answer of GET /api/cart and POST /api/cart/items.
type Cart struct {
	Lines      []Line `json:"lines"`
	TotalCents int64  `json:"total_cents"`
}

func (w *Web) addToCart(rw http.ResponseWriter, r *http.Request) {
	var req CartItemRequest
	if err := decode(rw, r, &req); err != nil {
		w.fail(rw, r, http.StatusBadRequest, err)
		return
	}
	if req.Quantity == 0 {
		req.Quantity = 1
	}
	if req.Quantity < 1 || req.Quantity > w.cfg.MaxQuantity {
		w.fail(rw, r, http.StatusBadRequest, fmt.Errorf("quantity %d is not from 1 to %d", req.Quantity, w.cfg.MaxQuantity))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	if _, err := w.store.product(ctx, req.ProductID); errors.Is(err, ErrNotFound) {
		w.fail(rw, r, http.StatusNotFound, err)
		return
	} else if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	sess, err := w.ensureSession(ctx, rw, r)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	if _, err := w.sessions.addToCart(ctx, sess.ID, req.ProductID, req.Quantity); err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	w.writeCart(ctx, rw, r, sess.ID, http.StatusCreated)
}

func (w *Web) viewCart(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	sess, ok, err := w.session(ctx, r)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	if !ok {
		writeJSON(rw, http.StatusOK, Cart{Lines: []Line{}})
		return
	}
	w.writeCart(ctx, rw, r, sess.ID, http.StatusOK)
}

// writeCart answers the cart of session id with current prices.
func (w *Web) writeCart(ctx context.Context, rw http.ResponseWriter, r *http.Request, id string, code int) {
	cart, err := w.sessions.cart(ctx, id)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	ids := make([]int64, 0, len(cart))
	for pid := range cart {
		ids = append(ids, pid)
	}
	products, err := w.store.productsByID(ctx, ids)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	c := Cart{Lines: []Line{}}
	for _, pid := range ids {
		p, ok := products[pid]
		if !ok {
			continue
		}
		c.Lines = append(c.Lines, Line{ProductID: pid, Name: p.Name, Quantity: cart[pid], PriceCents: p.PriceCents})
		c.TotalCents += cart[pid] * p.PriceCents
	}
	slices.SortFunc(c.Lines, func(a, b Line) int { return cmp.Compare(a.ProductID, b.ProductID) })
	writeJSON(rw, code, c)
}

// CheckoutResponse is the answer of POST /api/checkout.
type CheckoutResponse struct {
	OrderID    int64 `json:"order_id"`
	TotalCents int64 `json:"total_cents"`
}

func (w *Web) checkout(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	sess, ok, err := w.session(ctx, r)
	if err != nil {
		w.metrics.checkouts.WithLabelValues("error").Inc()
		w.storeFailed(rw, r, err)
		return
	}
	var cart map[int64]int64
	if ok {
		if cart, err = w.sessions.cart(ctx, sess.ID); err != nil {
			w.metrics.checkouts.WithLabelValues("error").Inc()
			w.storeFailed(rw, r, err)
			return
		}
	}
	if len(cart) == 0 {
		w.metrics.checkouts.WithLabelValues("empty_cart").Inc()
		w.fail(rw, r, http.StatusBadRequest, errors.New("cart is empty"))
		return
	}
	orderID, total, err := w.store.checkout(ctx, sess.UserID, cart)
	var oos *OutOfStockError
	if errors.As(err, &oos) {
		w.metrics.checkouts.WithLabelValues("out_of_stock").Inc()
		writeJSON(rw, http.StatusConflict, errorBody{Error: oos.Error(), ProductID: oos.ProductID})
		return
	}
	if err != nil {
		w.metrics.checkouts.WithLabelValues("error").Inc()
		w.storeFailed(rw, r, err)
		return
	}
	w.metrics.checkouts.WithLabelValues("ok").Inc()
	// The order is committed: failures from here on are logged, not
	// answered. Beat re-enqueues orders left pending.
	if err := enqueueFulfilment(ctx, w.rdb, orderID); err != nil {
		w.metrics.enqueueFailures.Inc()
		w.log.Warn("order placed but not enqueued", "order_id", orderID, "error", err)
	}
	if err := w.sessions.clearCart(ctx, sess.ID); err != nil {
		w.log.Warn("order placed but cart not cleared", "order_id", orderID, "error", err)
	}
	writeJSON(rw, http.StatusCreated, CheckoutResponse{OrderID: orderID, TotalCents: total})
}

// LoginRequest is the body of POST /api/login.
type LoginRequest struct {
	Email string `json:"email"`
}

// Account is the answer of POST /api/login and GET /api/account.
type Account struct {
	UserID     int64  `json:"user_id"`
	Email      string `json:"email"`
	OrderCount int64  `json:"order_count"`
}

func (w *Web) login(rw http.ResponseWriter, r *http.Request) {
	var req LoginRequest
	if err := decode(rw, r, &req); err != nil {
		w.fail(rw, r, http.StatusBadRequest, err)
		return
	}
	email := strings.ToLower(strings.TrimSpace(req.Email))
	if at := strings.IndexByte(email, '@'); at < 1 || at == len(email)-1 || len(email) > 254 {
		w.fail(rw, r, http.StatusBadRequest, fmt.Errorf("email %q is not valid", req.Email))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	userID, err := w.store.userByEmail(ctx, email)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	// Keep the visitor's session, and so the cart, across the login.
	sess, ok, err := w.session(ctx, r)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	if !ok {
		sess = session{ID: newSessionID()}
	}
	sess.UserID, sess.Email = userID, email
	if err := w.sessions.save(ctx, sess); err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	n, err := w.store.orderCount(ctx, userID)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	w.setCookie(rw, r, sess.ID)
	writeJSON(rw, http.StatusOK, Account{UserID: userID, Email: email, OrderCount: n})
}

// user returns the logged-in session, or answers 401.
func (w *Web) user(ctx context.Context, rw http.ResponseWriter, r *http.Request) (session, bool) {
	sess, ok, err := w.session(ctx, r)
	if err != nil {
		w.storeFailed(rw, r, err)
		return session{}, false
	}
	if !ok || sess.UserID == 0 {
		w.fail(rw, r, http.StatusUnauthorized, errors.New("not logged in"))
		return session{}, false
	}
	return sess, true
}

func (w *Web) account(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	sess, ok := w.user(ctx, rw, r)
	if !ok {
		return
	}
	n, err := w.store.orderCount(ctx, sess.UserID)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, Account{UserID: sess.UserID, Email: sess.Email, OrderCount: n})
}

func (w *Web) orders(rw http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.RequestTimeout)
	defer cancel()
	sess, ok := w.user(ctx, rw, r)
	if !ok {
		return
	}
	orders, err := w.store.orders(ctx, sess.UserID)
	if err != nil {
		w.storeFailed(rw, r, err)
		return
	}
	writeJSON(rw, http.StatusOK, map[string][]Order{"orders": orders})
}
