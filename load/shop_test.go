package load

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// standInShop is an httptest stand-in of the reference shop's API, strict
// about what a well-behaved client sends: JSON bodies, product ids that
// exist, the session cookie for the account pages.
type standInShop struct {
	mu       sync.Mutex
	hits     map[string]int // by "METHOD /path" (no query)
	problems []string
	orders   int
}

func newStandInShop() *standInShop { return &standInShop{hits: map[string]int{}} }

func (s *standInShop) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

func (s *standInShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.Method+" "+r.URL.Path]++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	session := func() bool {
		c, err := r.Cookie("session")
		if err != nil || !strings.HasPrefix(c.Value, "s-") {
			s.problem("%s %s without a session cookie", r.Method, r.URL.Path)
			http.Error(w, `{"error":"login required"}`, http.StatusUnauthorized)
			return false
		}
		return true
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/products":
		page, err := strconv.Atoi(r.URL.Query().Get("page"))
		if err != nil || page < 1 {
			s.problem("bad page %q", r.URL.Query().Get("page"))
			http.Error(w, `{"error":"page"}`, http.StatusBadRequest)
			return
		}
		var items []string
		for i := range 5 {
			items = append(items, fmt.Sprintf(`{"id": %d, "name": "ring %d"}`, page*100+i, i))
		}
		fmt.Fprintf(w, `{"products": [%s], "page": %d}`, strings.Join(items, ","), page)
	case r.Method == http.MethodGet && r.URL.Path == "/api/search":
		if r.URL.Query().Get("q") == "" {
			s.problem("search without q")
		}
		fmt.Fprint(w, `{"products": []}`)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/products/"):
		id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/api/products/"))
		if err != nil || id < 100 {
			s.problem("bad product id in %s", r.URL.Path)
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"id": %d}`, id)
	case r.Method == http.MethodPost && r.URL.Path == "/api/cart/items":
		var item struct {
			ProductID int `json:"product_id"`
			Quantity  int `json:"quantity"`
		}
		if err := json.NewDecoder(r.Body).Decode(&item); err != nil || item.ProductID < 100 || item.Quantity < 1 {
			s.problem("bad cart item: %v %+v", err, item)
			http.Error(w, `{"error":"bad item"}`, http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"ok": true}`)
	case r.Method == http.MethodGet && r.URL.Path == "/api/cart":
		fmt.Fprint(w, `{"items": []}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/login":
		var body struct {
			Email string `json:"email"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || !strings.HasSuffix(body.Email, "@shop.test") {
			s.problem("bad login: %v %q", err, body.Email)
			http.Error(w, `{"error":"bad login"}`, http.StatusBadRequest)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s-" + body.Email, Path: "/", HttpOnly: true})
		fmt.Fprint(w, `{"ok": true}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/checkout":
		if !session() {
			return
		}
		s.mu.Lock()
		s.orders++
		n := s.orders
		s.mu.Unlock()
		if n%2 == 0 { // as the real shop does when a cart outran the restock
			w.WriteHeader(http.StatusConflict)
			fmt.Fprintf(w, `{"error": "product %d is out of stock", "product_id": %d}`, n, n)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"order_id": %d}`, n)
	case r.Method == http.MethodGet && (r.URL.Path == "/api/account" || r.URL.Path == "/api/orders"):
		if session() {
			fmt.Fprint(w, `{"orders": []}`)
		}
	default:
		s.problem("unexpected %s %s", r.Method, r.URL.Path)
		http.NotFound(w, r)
	}
}
