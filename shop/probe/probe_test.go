package probe

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/shop/probeapi"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// at returns t0 plus ms milliseconds.
func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func ptr(t time.Time) *time.Time { return &t }

// ok, fail and pending build samples sent at ms.
func ok(ms, ackMS int) sample { return sample{sent: at(ms), acked: at(ackMS), done: true} }
func fail(ms int) sample      { return sample{sent: at(ms), err: "refused", done: true} }
func pending(ms int) sample   { return sample{sent: at(ms)} }

func TestSummarise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples []sample
		want    probeapi.StoreTimeline
	}{
		{
			name: "no writes",
			want: probeapi.StoreTimeline{Outages: []probeapi.Window{}},
		},
		{
			name:    "all acknowledged",
			samples: []sample{ok(0, 2), ok(100, 101), pending(200)},
			want:    probeapi.StoreTimeline{FirstSeq: 1, LastSeq: 3, Attempted: 3, Acked: 2, InFlight: 1, LastAck: at(101), Outages: []probeapi.Window{}},
		},
		{
			name:    "one closed outage",
			samples: []sample{ok(0, 2), fail(100), fail(200), ok(300, 305), ok(400, 401)},
			want: probeapi.StoreTimeline{FirstSeq: 1, LastSeq: 5, Attempted: 5, Acked: 3, Failed: 2, LastAck: at(401), Outages: []probeapi.Window{
				{Start: at(100), End: ptr(at(305)), LastAckBefore: ptr(at(2)), FirstSeq: 2, LastSeq: 3, Failed: 2, FirstError: "refused"},
			}},
		},
		{
			name:    "outage from the start, then one still open",
			samples: []sample{fail(0), ok(100, 150), fail(200), pending(300)},
			want: probeapi.StoreTimeline{FirstSeq: 1, LastSeq: 4, Attempted: 4, Acked: 1, Failed: 2, InFlight: 1, LastAck: at(150), Outages: []probeapi.Window{
				{Start: at(0), End: ptr(at(150)), FirstSeq: 1, LastSeq: 1, Failed: 1, FirstError: "refused"},
				{Start: at(200), LastAckBefore: ptr(at(150)), FirstSeq: 3, LastSeq: 3, Failed: 1, FirstError: "refused"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, summarise(tt.samples, 1, false, 0)); diff != "" {
				t.Errorf("summarise (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	samples := []sample{ok(0, 1), ok(100, 101), fail(200), fail(300), ok(400, 401), pending(500)}
	tests := []struct {
		name  string
		found map[int64]int
		err   error
		want  probeapi.StoreVerification
	}{
		{
			name:  "everything acknowledged is there",
			found: map[int64]int{1: 1, 2: 1, 5: 1},
			want:  probeapi.StoreVerification{Acked: 3, Found: 3, Missing: []int64{}, Duplicates: []int64{}, UnackedPresent: []int64{}},
		},
		{
			name:  "lost, duplicated, and a failed write that landed",
			found: map[int64]int{1: 2, 4: 1, 5: 1, 6: 1},
			want:  probeapi.StoreVerification{Acked: 3, Found: 4, Missing: []int64{2}, Duplicates: []int64{1}, UnackedPresent: []int64{4}},
		},
		{
			name: "read failed",
			err:  errors.New("connection refused"),
			want: probeapi.StoreVerification{Missing: []int64{}, Duplicates: []int64{}, UnackedPresent: []int64{}, Error: "connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, compare(samples, 1, tt.found, tt.err)); diff != "" {
				t.Errorf("compare (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecordForgets: a prober that runs for hours keeps only the writes of
// its last Retain, read piece by piece with since, and verifies only those:
// its memory and its answers stay bounded however long its pod lives.
func TestRecordForgets(t *testing.T) {
	t.Parallel()
	const interval, retain = 100 * time.Millisecond, time.Hour
	r := record{samples: map[string][]sample{probeapi.StorePostgres: nil, probeapi.StoreRedis: nil}}
	const writes = 5 * 36000 // five hours
	for i := range writes {
		sent := at(i * 100)
		seq := r.add(sent)
		for store := range r.samples {
			s := r.at(store, seq)
			s.done, s.acked = true, sent.Add(time.Millisecond)
		}
		r.forget(sent.Add(-retain), interval)
	}
	held := len(r.samples[probeapi.StorePostgres])
	if most := int((retain + time.Minute) / interval); held > most || held < int(retain/interval) {
		t.Fatalf("%d writes held after five hours, want about an hour's (%d)", held, int(retain/interval))
	}
	if r.first != writes-int64(held)+1 || r.next != writes+1 {
		t.Errorf("first %d, next %d, with %d held of %d", r.first, r.next, held, writes)
	}
	st := summarise(r.samples[probeapi.StoreRedis], r.first, true, writes-10)
	if st.FirstSeq != r.first || st.LastSeq != writes || len(st.Samples) != 10 || st.Samples[0].Seq != writes-9 || st.Attempted != int64(held) {
		t.Errorf("timeline since %d: first %d last %d, %d samples from %d, %d attempted", writes-10, st.FirstSeq, st.LastSeq, len(st.Samples), st.Samples[0].Seq, st.Attempted)
	}
	// A forgotten write found in the store is not checked, a held one is.
	found := map[int64]int{1: 1, r.first: 1}
	if sv := compare(r.samples[probeapi.StoreRedis], r.first, found, nil); sv.Found != 1 || sv.Acked != int64(held) || len(sv.Missing) != held-1 {
		t.Errorf("compare = found %d, acked %d, %d missing; want the held writes only", sv.Found, sv.Acked, len(sv.Missing))
	}
}

// TestTimelineSince serves the writes after since over HTTP, and refuses a
// since that is no sequence number.
func TestTimelineSince(t *testing.T) {
	t.Parallel()
	p := New(DefaultConfig(), nil, nil, nil)
	for i := range 3 {
		seq := p.rec.add(at(i * 100))
		p.record(probeapi.StorePostgres, seq, nil)
		p.record(probeapi.StoreRedis, seq, errors.New("refused"))
	}
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(srv.Close)
	get := func(query string) (int, probeapi.Timeline) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/timeline?"+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var tl probeapi.Timeline
		_ = json.NewDecoder(resp.Body).Decode(&tl)
		return resp.StatusCode, tl
	}
	code, tl := get("samples=true&since=2")
	pg := tl.Stores[probeapi.StorePostgres]
	if code != http.StatusOK || len(pg.Samples) != 1 || pg.Samples[0].Seq != 3 || pg.Attempted != 3 || pg.LastSeq != 3 {
		t.Errorf("since=2: %d %+v, want the third write only, and the counts of all three", code, pg)
	}
	if code, _ := get("samples=true&since=two"); code != http.StatusBadRequest {
		t.Errorf("since=two: %d, want 400", code)
	}
}
