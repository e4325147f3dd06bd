package shop

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys of the shop. Sessions and carts are keyed by the session id.
const (
	keySessionPrefix = "shop:session:"
	keyCartPrefix    = "shop:cart:"
	// keyCarts is a sorted set of session ids scored by the last time
	// their cart changed (Unix milliseconds); beat expires idle carts.
	keyCarts = "shop:carts"
	// FulfilmentStream is the Redis stream of fulfilment jobs.
	FulfilmentStream = "shop:fulfilment"
	// FulfilmentGroup is the consumer group of the workers.
	FulfilmentGroup = "fulfilment"
)

// session is the state of one visitor.
type session struct {
	ID     string
	UserID int64
	Email  string
}

// sessions keeps sessions and carts in Redis.
type sessions struct {
	rdb redis.UniversalClient
	ttl time.Duration
}

// newSessionID returns 128 random bits, hex encoded.
func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// validSessionID reports whether id has the form newSessionID produces;
// other cookie values are ignored without a Redis round trip.
func validSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// get loads a session; ok is false when it does not exist (expired, never
// created, or lost in a Redis failover).
func (s *sessions) get(ctx context.Context, id string) (sess session, ok bool, err error) {
	m, err := s.rdb.HGetAll(ctx, keySessionPrefix+id).Result()
	if err != nil {
		return session{}, false, fmt.Errorf("load session: %w", err)
	}
	if len(m) == 0 {
		return session{}, false, nil
	}
	sess = session{ID: id, Email: m["email"]}
	if v := m["user_id"]; v != "" {
		if sess.UserID, err = strconv.ParseInt(v, 10, 64); err != nil {
			return session{}, false, fmt.Errorf("load session: user id %q: %w", v, err)
		}
	}
	return sess, true, nil
}

// save stores a session and renews its expiry.
func (s *sessions) save(ctx context.Context, sess session) error {
	key := keySessionPrefix + sess.ID
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "user_id", sess.UserID, "email", sess.Email, "seen", time.Now().Unix())
		p.Expire(ctx, key, s.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

// addToCart adds quantity of a product to the cart of session id and
// returns the new quantity.
func (s *sessions) addToCart(ctx context.Context, id string, productID, quantity int64) (int64, error) {
	key := keyCartPrefix + id
	var incr *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.HIncrBy(ctx, key, strconv.FormatInt(productID, 10), quantity)
		p.Expire(ctx, key, s.ttl)
		p.ZAdd(ctx, keyCarts, redis.Z{Score: float64(time.Now().UnixMilli()), Member: id})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add to cart: %w", err)
	}
	return incr.Val(), nil
}

// cart returns the cart of session id: product id → quantity.
func (s *sessions) cart(ctx context.Context, id string) (map[int64]int64, error) {
	m, err := s.rdb.HGetAll(ctx, keyCartPrefix+id).Result()
	if err != nil {
		return nil, fmt.Errorf("load cart: %w", err)
	}
	cart := make(map[int64]int64, len(m))
	for k, v := range m {
		pid, err1 := strconv.ParseInt(k, 10, 64)
		q, err2 := strconv.ParseInt(v, 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("load cart: line %q=%q: %w", k, v, err)
		}
		if q > 0 {
			cart[pid] = q
		}
	}
	return cart, nil
}

// clearCart deletes the cart of session id.
func (s *sessions) clearCart(ctx context.Context, id string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, keyCartPrefix+id)
		p.ZRem(ctx, keyCarts, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("clear cart: %w", err)
	}
	return nil
}

// enqueueFulfilment adds a fulfilment job for an order to the stream.
func enqueueFulfilment(ctx context.Context, rdb redis.UniversalClient, orderID int64) error {
	err := rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: FulfilmentStream,
		Values: []any{"order_id", orderID},
	}).Err()
	if err != nil {
		return fmt.Errorf("enqueue fulfilment of order %d: %w", orderID, err)
	}
	return nil
}
