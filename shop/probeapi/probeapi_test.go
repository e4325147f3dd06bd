package probeapi_test

import (
	"encoding/json"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/shop/probeapi"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestWireFormat pins the JSON the prober serves and the lab reads, and
// checks that it decodes back to the same values.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	at := func(ms int) time.Time {
		return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(ms) * time.Millisecond)
	}
	ptr := func(t time.Time) *time.Time { return &t }
	tests := []struct {
		name  string
		value any
		empty func() any
	}{
		{
			name: "timeline",
			value: &probeapi.Timeline{
				Run: "a1b2c3", IntervalMS: 100, Started: at(0), Now: at(900),
				Stores: map[string]probeapi.StoreTimeline{
					probeapi.StorePostgres: {FirstSeq: 1, LastSeq: 10, Attempted: 10, Acked: 10, LastAck: at(902), Outages: []probeapi.Window{}},
					probeapi.StoreRedis: {
						Attempted: 10, Acked: 7, Failed: 2, InFlight: 1, LastAck: at(801),
						Outages: []probeapi.Window{{
							Start: at(500), End: ptr(at(801)), LastAckBefore: ptr(at(401)),
							FirstSeq: 6, LastSeq: 7, Failed: 2, FirstError: "connection refused",
						}},
						Samples: []probeapi.Sample{{Seq: 6, Sent: at(500), Error: "connection refused"}, {Seq: 8, Sent: at(700), Acked: at(801)}},
					},
				},
			},
			empty: func() any { return &probeapi.Timeline{} },
		},
		{
			name: "verification",
			value: &probeapi.Verification{
				Run: "a1b2c3", Checked: at(1000),
				Stores: map[string]probeapi.StoreVerification{
					probeapi.StorePostgres: {Acked: 10, Found: 10, Missing: []int64{}, Duplicates: []int64{}, UnackedPresent: []int64{}},
					probeapi.StoreRedis:    {Acked: 7, Found: 7, Missing: []int64{5}, Duplicates: []int64{}, UnackedPresent: []int64{6}},
				},
			},
			empty: func() any { return &probeapi.Verification{} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := json.MarshalIndent(tt.value, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tt.name+".golden.json"), append(got, '\n'), *update)
			back := tt.empty()
			if err := json.Unmarshal(got, back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.value, back); diff != "" {
				t.Errorf("decoded golden (-value +decoded):\n%s", diff)
			}
		})
	}
}
