// Package shop is the jewelry-shop reference service: a small Go web shop
// that behaves like the production Django shop where the lab's validation
// needs it. It keeps its state in PostgreSQL, and its sessions, carts and
// job queue in Redis reached through Sentinel, and it fails and recovers
// like a real web application when those stores fail over: every store
// call has a timeout, store errors are answered with 503, and the
// connection pools reconnect to the new primary or master without a
// restart.
//
// The binary cmd/shop runs one of four modes: web (NewWeb), worker
// (NewWorker), beat (NewBeat) and probe (package shop/probe).
//
// # HTTP API of the web mode
//
// All bodies are JSON. The session is carried by the cookie named
// "session" (SessionCookie); it is created by the first add to cart or
// login. Store failures are answered 503 with {"error": "..."}.
//
//	GET  /api/products?page=&category=  catalogue page (20 per page, from 1), optionally of one category → Page
//	GET  /api/categories                 {"categories": [...]}
//	GET  /api/search?q=                  up to 20 products whose name or description contains q
//	GET  /api/products/{id}              one Product, 404 if unknown
//	POST /api/cart/items                 {"product_id": 3, "quantity": 1} → 201 Cart (quantity 1..10, default 1)
//	GET  /api/cart                       Cart of the session (empty without a session)
//	POST /api/checkout                   → 201 {"order_id": .., "total_cents": ..}; 400 empty cart; 409 out of stock
//	POST /api/login                      {"email": "a@b.c"} → 200 Account, sets the session cookie, keeps the cart
//	GET  /api/account                    Account with order_count; 401 if not logged in
//	GET  /api/orders                     {"orders": [Order...]}, newest first, at most 50; 401 if not logged in
//	GET  /healthz                        200 while the process runs (liveness)
//	GET  /readyz                         200 while the pod can serve, 503 while it shuts down (readiness; the stores are not asked)
//	GET  /healthz/stores                 200 if PostgreSQL and Redis answer, else 503, with the state of each
//	GET  /metrics                        Prometheus metrics
//
// Checkout is one PostgreSQL transaction that decrements stock (never
// below zero), creates the order and its lines; the fulfilment job is then
// added to the Redis stream FulfilmentStream and the cart is cleared.
// Guests may check out; a logged-in user's orders appear in the history.
//
// # Worker and beat
//
// Workers read FulfilmentStream in the consumer group FulfilmentGroup,
// mark the order fulfilled in PostgreSQL and acknowledge the job only
// then; jobs left pending by a crashed worker are claimed by another after
// WorkerConfig.ClaimIdle. An order is fulfilled exactly once even when its
// job is delivered twice. Beat runs periodic jobs (expire abandoned carts,
// re-enqueue orders whose job was lost, restock nearly sold-out products so
// that long load tests keep selling) on the one instance that holds the
// leader key in Redis.
//
// # Configuration
//
// Every setting is a flag of cmd/shop with an environment variable as its
// default; shop/README.md lists them all.
package shop
