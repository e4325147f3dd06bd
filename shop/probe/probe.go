// Package probe is the shop's failover prober: the measuring instrument of
// the lab's failover experiments.
//
// Every Interval it sends one write with the next sequence number to each
// store, PostgreSQL (through the primary Service) and a Redis stream
// (through Sentinel), each with its own timeout and without retries, and
// records the send time and the acknowledgement time or the error. Over
// HTTP it serves the timeline (GET /timeline: counts and outage windows per
// store, with ?samples=true every write, with &since=<seq> only those after
// seq, so that a reader can read it piece by piece) and a verification
// (GET /verify: every acknowledged sequence number read back, reporting the
// missing and the duplicated). It keeps the writes of the last Retain only,
// so that a prober running for days stays within its memory. The wire types
// are in package probeapi.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/jewelry-shop/lab/shop/probeapi"
)

// Config configures a prober.
type Config struct {
	// Interval is the time between two writes.
	Interval time.Duration
	// WriteTimeout bounds one write; a write without an answer by then
	// counts as failed.
	WriteTimeout time.Duration
	// ReadTimeout bounds the read-back of one store in Verify.
	ReadTimeout time.Duration
	// Run names this run; sequence numbers restart at 1 in every run.
	// Empty means a random name.
	Run string
	// Retain is how long the writes are kept: older ones are forgotten,
	// left out of the timeline and of the verification. Zero keeps
	// everything.
	Retain time.Duration
}

// DefaultConfig returns a 100 ms interval with a 1 s write timeout, and
// keeps the writes of the last three hours (about 15 MiB at 100 ms): more
// than a validation run, so that a reader that reads the timeline as the
// run goes misses nothing.
func DefaultConfig() Config {
	return Config{Interval: 100 * time.Millisecond, WriteTimeout: time.Second, ReadTimeout: 30 * time.Second, Retain: 3 * time.Hour}
}

// table is the PostgreSQL table of the probe writes. It has no unique
// constraint on (run, seq), so that a write applied twice shows up as a
// duplicate instead of being hidden.
const table = `CREATE TABLE IF NOT EXISTS probe_writes (
	id      bigserial PRIMARY KEY,
	run     text NOT NULL,
	seq     bigint NOT NULL,
	sent_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS probe_writes_run_seq ON probe_writes (run, seq)`

// sample is one write to one store.
type sample struct {
	sent  time.Time
	acked time.Time
	err   string
	done  bool
}

// Prober writes to the stores and keeps what happened. Create it with New.
type Prober struct {
	cfg Config
	pg  *pgxpool.Pool
	rdb redis.UniversalClient
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	started time.Time
	rec     record
}

// record holds the writes of every store: rec.samples[store][seq-first] is
// the write of seq to store. Every store gets every sequence number.
type record struct {
	// first is the sequence number of the oldest write held; next the one
	// of the next write.
	first, next int64
	samples     map[string][]sample
}

// add records a write sent now to every store and returns its number.
func (r *record) add(sent time.Time) int64 {
	if r.next == 0 {
		r.first, r.next = 1, 1
	}
	seq := r.next
	r.next++
	for store := range r.samples {
		r.samples[store] = append(r.samples[store], sample{sent: sent})
	}
	return seq
}

// at returns the write of seq to store; nil when it is not held.
func (r *record) at(store string, seq int64) *sample {
	i := seq - r.first
	if ss := r.samples[store]; i >= 0 && i < int64(len(ss)) {
		return &ss[i]
	}
	return nil
}

// forget drops the writes sent before cutoff, in one copy once they are a
// minute's worth or more, so that trimming costs little per write.
func (r *record) forget(cutoff time.Time, interval time.Duration) {
	var ss []sample
	for _, v := range r.samples {
		ss = v
		break
	}
	n := 0
	for n < len(ss) && ss[n].sent.Before(cutoff) && ss[n].done {
		n++
	}
	if n == 0 || (interval > 0 && time.Duration(n)*interval < time.Minute && n < len(ss)) {
		return
	}
	for store, v := range r.samples {
		r.samples[store] = slices.Clone(v[n:])
	}
	r.first += int64(n)
}

// New returns a prober over a PostgreSQL pool and a Redis client (which
// should not retry: a retried write could be applied twice). A nil logger
// discards logs.
func New(cfg Config, pg *pgxpool.Pool, rdb redis.UniversalClient, log *slog.Logger) *Prober {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Run == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b) // crypto/rand.Read never fails
		cfg.Run = hex.EncodeToString(b)
	}
	return &Prober{
		cfg: cfg, pg: pg, rdb: rdb, log: log.With("run", cfg.Run), now: time.Now,
		rec: record{samples: map[string][]sample{probeapi.StorePostgres: nil, probeapi.StoreRedis: nil}},
	}
}

// Run is the name of this prober's run.
func (p *Prober) Run() string { return p.cfg.Run }

// stream is the Redis stream of this run.
func (p *Prober) stream() string { return "shop:probe:" + p.cfg.Run }

// Start creates the probe table, retrying until it succeeds or ctx ends.
// The first write is sent only once the table exists.
func (p *Prober) Start(ctx context.Context) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
		_, err := p.pg.Exec(wctx, table)
		cancel()
		if err == nil {
			return nil
		}
		p.log.Warn("create probe table", "error", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("create probe table: %w", errors.Join(ctx.Err(), err))
		case <-time.After(p.cfg.Interval):
		}
	}
}

// Probe writes every Interval until ctx is cancelled, then waits for the
// writes in flight (at most WriteTimeout). Call Start first.
func (p *Prober) Probe(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.tick(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// tick sends the next sequence number to every store, each write in its
// own goroutine so that a hanging store does not delay the others or the
// next tick.
func (p *Prober) tick(ctx context.Context, wg *sync.WaitGroup) {
	sent := p.now()
	p.mu.Lock()
	if p.started.IsZero() {
		p.started = sent
	}
	seq := p.rec.add(sent)
	if p.cfg.Retain > 0 {
		p.rec.forget(sent.Add(-p.cfg.Retain), p.cfg.Interval)
	}
	p.mu.Unlock()
	// A write already sent is not abandoned when the prober stops: it
	// gets its own timeout, so the record says what really happened.
	wctx := context.WithoutCancel(ctx)
	writes := map[string]func(context.Context) error{
		probeapi.StorePostgres: func(ctx context.Context) error {
			_, err := p.pg.Exec(ctx, "INSERT INTO probe_writes (run, seq, sent_at) VALUES ($1, $2, $3)", p.cfg.Run, seq, sent)
			return err
		},
		probeapi.StoreRedis: func(ctx context.Context) error {
			return p.rdb.XAdd(ctx, &redis.XAddArgs{Stream: p.stream(), Values: []any{"seq", seq}}).Err()
		},
	}
	for store, write := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, cancel := context.WithTimeout(wctx, p.cfg.WriteTimeout)
			defer cancel()
			err := write(c)
			p.record(store, seq, err)
		}()
	}
}

// record stores the outcome of the write of seq to store.
func (p *Prober) record(store string, seq int64, err error) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.rec.at(store, seq)
	if s == nil {
		return // forgotten while in flight: older than Retain
	}
	s.done = true
	if err != nil {
		s.err = err.Error()
		return
	}
	s.acked = now
}

// Timeline summarises the writes held; with samples it includes every
// write.
func (p *Prober) Timeline(withSamples bool) probeapi.Timeline {
	return p.TimelineSince(withSamples, 0)
}

// TimelineSince summarises the writes held; with samples it includes the
// writes after sequence number since.
func (p *Prober) TimelineSince(withSamples bool, since int64) probeapi.Timeline {
	p.mu.Lock()
	defer p.mu.Unlock()
	tl := probeapi.Timeline{
		Run:        p.cfg.Run,
		IntervalMS: p.cfg.Interval.Milliseconds(),
		Started:    p.started.UTC(),
		Now:        p.now().UTC(),
		Stores:     map[string]probeapi.StoreTimeline{},
	}
	for store, samples := range p.rec.samples {
		tl.Stores[store] = summarise(samples, p.rec.first, withSamples, since)
	}
	return tl
}

// summarise counts the writes held, the first of which is number first,
// and finds the outage windows: runs of consecutive failed writes, in
// sequence order. Writes in flight neither open nor close a window. With
// samples it lists the writes after since.
func summarise(samples []sample, first int64, withSamples bool, since int64) probeapi.StoreTimeline {
	st := probeapi.StoreTimeline{Outages: []probeapi.Window{}}
	if len(samples) > 0 {
		st.FirstSeq, st.LastSeq = first, first+int64(len(samples))-1
	}
	var open *probeapi.Window
	var lastAck time.Time
	for i, s := range samples {
		st.Attempted++
		seq := first + int64(i)
		if withSamples && seq > since {
			st.Samples = append(st.Samples, probeapi.Sample{Seq: seq, Sent: s.sent.UTC(), Acked: s.acked.UTC(), Error: s.err})
		}
		switch {
		case !s.done:
			st.InFlight++
		case s.err != "":
			st.Failed++
			if open == nil {
				open = &probeapi.Window{Start: s.sent.UTC(), FirstSeq: seq, FirstError: s.err}
				if !lastAck.IsZero() {
					t := lastAck.UTC()
					open.LastAckBefore = &t
				}
			}
			open.LastSeq = seq
			open.Failed++
		default:
			st.Acked++
			if s.acked.After(lastAck) {
				lastAck = s.acked
			}
			if open != nil {
				end := s.acked.UTC()
				open.End = &end
				st.Outages = append(st.Outages, *open)
				open = nil
			}
		}
	}
	if open != nil {
		st.Outages = append(st.Outages, *open)
	}
	if !lastAck.IsZero() {
		st.LastAck = lastAck.UTC()
	}
	return st
}

// Verify reads back every sequence number of this run from each store
// and compares it with the acknowledged writes.
func (p *Prober) Verify(ctx context.Context) probeapi.Verification {
	// Snapshot first: a write acknowledged after the snapshot is not
	// checked; one acknowledged before it must be found by the read.
	p.mu.Lock()
	snapshot := map[string][]sample{}
	for store, s := range p.rec.samples {
		snapshot[store] = slices.Clone(s)
	}
	first := p.rec.first
	p.mu.Unlock()
	reads := map[string]func(context.Context) (map[int64]int, error){
		probeapi.StorePostgres: p.readPostgres,
		probeapi.StoreRedis:    p.readRedis,
	}
	v := probeapi.Verification{Run: p.cfg.Run, Stores: map[string]probeapi.StoreVerification{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for store, read := range reads {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, p.cfg.ReadTimeout)
			defer cancel()
			found, err := read(rctx)
			sv := compare(snapshot[store], first, found, err)
			mu.Lock()
			v.Stores[store] = sv
			mu.Unlock()
		})
	}
	wg.Wait()
	v.Checked = p.now().UTC()
	return v
}

// compare checks the writes held, the first of which is number first,
// against the sequence numbers found (seq → number of copies); those found
// below first were forgotten and are not checked.
func compare(samples []sample, first int64, found map[int64]int, err error) probeapi.StoreVerification {
	sv := probeapi.StoreVerification{Missing: []int64{}, Duplicates: []int64{}, UnackedPresent: []int64{}}
	if err != nil {
		sv.Error = err.Error()
		return sv
	}
	maps.DeleteFunc(found, func(seq int64, _ int) bool { return seq < first })
	sv.Found = int64(len(found))
	for i, s := range samples {
		seq := first + int64(i)
		n := found[seq]
		switch {
		case s.done && s.err == "":
			sv.Acked++
			if n == 0 {
				sv.Missing = append(sv.Missing, seq)
			}
		case s.done && n > 0:
			sv.UnackedPresent = append(sv.UnackedPresent, seq)
		}
	}
	for seq, n := range found {
		if n > 1 {
			sv.Duplicates = append(sv.Duplicates, seq)
		}
	}
	slices.Sort(sv.Duplicates)
	return sv
}

// readPostgres counts the rows of this run per sequence number.
func (p *Prober) readPostgres(ctx context.Context) (map[int64]int, error) {
	rows, err := p.pg.Query(ctx, "SELECT seq, count(*) FROM probe_writes WHERE run = $1 GROUP BY seq", p.cfg.Run)
	if err != nil {
		return nil, fmt.Errorf("read back probe writes: %w", err)
	}
	defer rows.Close()
	found := map[int64]int{}
	for rows.Next() {
		var seq, n int64
		if err := rows.Scan(&seq, &n); err != nil {
			return nil, fmt.Errorf("read back probe writes: %w", err)
		}
		found[seq] = int(n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read back probe writes: %w", err)
	}
	return found, nil
}

// readRedis counts the stream entries of this run per sequence number.
func (p *Prober) readRedis(ctx context.Context) (map[int64]int, error) {
	found := map[int64]int{}
	start := "-"
	for {
		msgs, err := p.rdb.XRangeN(ctx, p.stream(), start, "+", 1000).Result()
		if err != nil {
			return nil, fmt.Errorf("read back probe stream: %w", err)
		}
		for _, m := range msgs {
			v, _ := m.Values["seq"].(string)
			seq, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("read back probe stream: entry %s: seq %q: %w", m.ID, v, err)
			}
			found[seq]++
		}
		if len(msgs) < 1000 {
			return found, nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}
