package lab_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/internal/services"
	observe "github.com/jewelry-shop/lab/lab/internal/kube"
	"github.com/jewelry-shop/lab/lab/measure"
)

// leaderObservation is one answer of lab's leader detection.
type leaderObservation struct {
	at  time.Time
	pod string
	err error
}

type leaderObservations []leaderObservation

// samples are successes where lab named one primary other than old.
func (o leaderObservations) samples(old string) []measure.Sample {
	out := make([]measure.Sample, 0, len(o))
	for _, x := range o {
		out = append(out, measure.Sample{At: x.at, OK: x.err == nil && x.pod != old})
	}
	return out
}

// firstAlone is when lab first named a primary other than old.
func (o leaderObservations) firstAlone(old string) time.Time {
	for _, x := range o {
		if x.err == nil && x.pod != old {
			return x.at
		}
	}
	return time.Time{}
}

// summary says what lab's leader detection answered, run by run.
func (o leaderObservations) summary() string {
	var parts []string
	var last string
	n := 0
	flush := func() {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d×)", last, n))
		}
	}
	for _, x := range o {
		s := x.pod
		if x.err != nil {
			s = "error: " + strings.TrimPrefix(x.err.Error(), "find the PostgreSQL primary: ")
		}
		if s != last {
			flush()
			last, n = s, 0
		}
		n++
	}
	flush()
	return strings.Join(parts, " → ")
}

// leaderWatch polls the primary as lab finds it (lab/internal/kube) every 100 ms, as often as the
// prober writes, for at most 10 minutes.
type leaderWatch struct {
	cancel context.CancelFunc
	done   chan leaderObservations
}

func watchLeader(ctx context.Context, kube kubernetes.Interface, c *services.PatroniCluster) *leaderWatch {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	w := &leaderWatch{cancel: cancel, done: make(chan leaderObservations, 1)}
	go func() {
		var obs leaderObservations
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			pod, err := observe.PostgresPrimary(ctx, kube, c.Namespace, c.PodSelector())
			if ctx.Err() != nil {
				w.done <- obs
				return
			}
			obs = append(obs, leaderObservation{at: time.Now(), pod: pod, err: err})
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *leaderWatch) stop() leaderObservations {
	w.cancel()
	return <-w.done
}
