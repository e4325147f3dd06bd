package judge

import (
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// ProberSamples turns a store's prober writes into the samples a recovery is
// measured on: an acknowledged write is a success when it was acknowledged,
// a failed one a failure when it was sent; a write without an answer yet is
// no sample.
func ProberSamples(st probeapi.StoreTimeline) []measure.Sample {
	var out []measure.Sample
	for _, s := range st.Samples {
		switch {
		case !s.Acked.IsZero():
			out = append(out, measure.Sample{At: s.Acked, OK: true})
		case s.Error != "":
			out = append(out, measure.Sample{At: s.Sent, OK: false})
		}
	}
	return out
}
