package lab

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/shop/probeapi"
)

// proberLog is the prober's record as the runner read it, piece by piece
// during the run: each read asks for the writes after the last one it had
// complete and merges them, so that what was read survives the prober's
// pod (node failure can evict it), and no read grows with the prober's
// uptime. A prober that restarted (a new run name) starts a new segment.
type proberLog struct {
	segs []*proberSegment
}

// proberSegment is what was read of one prober run.
type proberSegment struct {
	run        string
	intervalMS int64
	started    time.Time
	now        time.Time
	samples    map[string]map[int64]probeapi.Sample // by store and sequence number
	// from is the write the log starts at: the latest one sent when the
	// run's first read found the prober (writes before the load are not
	// the run's).
	from int64
	// verify is the run's latest verification, read at verifiedAt.
	verify     *probeapi.Verification
	verifiedAt time.Time
}

// since is the sequence number to read after: the latest write read whose
// outcome was known, for every store, so that a write read in flight is
// read again.
func (l *proberLog) since() int64 {
	if len(l.segs) == 0 {
		return 0
	}
	g := l.segs[len(l.segs)-1]
	since := int64(-1)
	for _, byseq := range g.samples {
		last := g.from
		for _, seq := range slices.Sorted(maps.Keys(byseq)) {
			if s := byseq[seq]; s.Acked.IsZero() && s.Error == "" {
				break // in flight: read it again
			}
			last = seq
		}
		if since < 0 || last < since {
			since = last
		}
	}
	return max(since, g.from)
}

// first reports whether the timeline is the first read of its run.
func (l *proberLog) first(tl probeapi.Timeline) bool {
	return len(l.segs) == 0 || l.segs[len(l.segs)-1].run != tl.Run
}

// add merges a timeline read with since into the log. The first read of a
// run marks where the log starts; its samples, if any, are kept.
func (l *proberLog) add(tl probeapi.Timeline, start bool) {
	if l.first(tl) {
		g := &proberSegment{run: tl.Run, intervalMS: tl.IntervalMS, started: tl.Started, samples: map[string]map[int64]probeapi.Sample{}}
		if start {
			g.from = int64(-1)
			for _, st := range tl.Stores {
				if g.from < 0 || st.LastSeq < g.from {
					g.from = st.LastSeq
				}
			}
			g.from = max(g.from, 0)
		}
		l.segs = append(l.segs, g)
	}
	g := l.segs[len(l.segs)-1]
	g.now = tl.Now
	for store, st := range tl.Stores {
		if g.samples[store] == nil {
			g.samples[store] = map[int64]probeapi.Sample{}
		}
		for _, s := range st.Samples {
			if s.Seq > g.from {
				g.samples[store][s.Seq] = s
			}
		}
	}
}

// addVerify keeps a verification of the current run.
func (l *proberLog) addVerify(v probeapi.Verification, at time.Time) {
	for _, g := range l.segs {
		if g.run == v.Run {
			g.verify, g.verifiedAt = &v, at
		}
	}
}

// offsets are the numbers added to each segment's sequence numbers in the
// merged record: a later run's follow the earlier run's.
func (l *proberLog) offsets() []int64 {
	out := make([]int64, len(l.segs))
	var off int64
	for i, g := range l.segs {
		out[i] = off
		var top int64
		for _, byseq := range g.samples {
			for seq := range byseq {
				top = max(top, seq)
			}
		}
		off += top
	}
	return out
}

// timeline is the merged record; ok is false when nothing was read.
func (l *proberLog) timeline() (probeapi.Timeline, bool) {
	if len(l.segs) == 0 {
		return probeapi.Timeline{}, false
	}
	offs := l.offsets()
	var runs []string
	tl := probeapi.Timeline{IntervalMS: l.segs[0].intervalMS, Started: l.segs[0].started, Stores: map[string]probeapi.StoreTimeline{}}
	for i, g := range l.segs {
		runs = append(runs, g.run)
		tl.Now = g.now
		for store, byseq := range g.samples {
			st := tl.Stores[store]
			for _, seq := range slices.Sorted(maps.Keys(byseq)) {
				s := byseq[seq]
				s.Seq += offs[i]
				st.Samples = append(st.Samples, s)
				st.Attempted++
				switch {
				case !s.Acked.IsZero():
					st.Acked++
					st.LastAck = s.Acked
				case s.Error != "":
					st.Failed++
				default:
					st.InFlight++
				}
			}
			if n := len(st.Samples); n > 0 {
				st.FirstSeq, st.LastSeq = st.Samples[0].Seq, st.Samples[n-1].Seq
			}
			tl.Stores[store] = st
		}
	}
	tl.Run = strings.Join(runs, ", then ")
	return tl, true
}

// verification merges the latest verification of every run; why says why
// there is none. A run without one, or whose verification is older than
// writes it acknowledged, is named in the notes and, without any
// verification, in why.
func (l *proberLog) verification() (*probeapi.Verification, []string, error) {
	offs := l.offsets()
	var notes []string
	var errs []error
	out := &probeapi.Verification{Stores: map[string]probeapi.StoreVerification{}}
	var runs []string
	for i, g := range l.segs {
		if g.verify == nil {
			errs = append(errs, fmt.Errorf("prober run %s was never verified", g.run))
			continue
		}
		runs = append(runs, g.run)
		out.Checked = g.verify.Checked
		for store, sv := range g.verify.Stores {
			m := out.Stores[store]
			if sv.Error != "" {
				m.Error = strings.TrimPrefix(m.Error+"; run "+g.run+": "+sv.Error, "; ")
			}
			m.Acked += sv.Acked
			m.Found += sv.Found
			shift := func(seqs []int64) []int64 {
				var kept []int64
				for _, q := range seqs {
					if q > g.from {
						kept = append(kept, q+offs[i])
					}
				}
				return kept
			}
			m.Missing = append(orEmpty(m.Missing), shift(sv.Missing)...)
			m.Duplicates = append(orEmpty(m.Duplicates), shift(sv.Duplicates)...)
			m.UnackedPresent = append(orEmpty(m.UnackedPresent), shift(sv.UnackedPresent)...)
			out.Stores[store] = m
		}
		if i < len(l.segs)-1 {
			late := 0
			for _, byseq := range g.samples {
				for _, s := range byseq {
					if !s.Acked.IsZero() && s.Acked.After(g.verify.Checked) {
						late++
					}
				}
			}
			if late > 0 {
				notes = append(notes, fmt.Sprintf("%d writes the prober run %s acknowledged after its last verification (at %s) are not verified: the prober restarted before the next", late, g.run, g.verify.Checked.UTC().Format(time.TimeOnly)))
			}
		}
	}
	if len(runs) == 0 {
		return nil, notes, errors.Join(errs...)
	}
	out.Run = strings.Join(runs, ", then ")
	for _, err := range errs {
		notes = append(notes, err.Error())
	}
	return out, notes, nil
}

// restartNotes say that the prober restarted during the run, and how its
// sequence numbers are shown.
func (l *proberLog) restartNotes() []string {
	if len(l.segs) < 2 {
		return nil
	}
	offs := l.offsets()
	var parts []string
	for i, g := range l.segs[1:] {
		parts = append(parts, fmt.Sprintf("run %s from %s, its sequence numbers shown +%d", g.run, g.started.UTC().Format(time.TimeOnly), offs[i+1]))
	}
	return []string{fmt.Sprintf("the prober restarted during the run (a new pod): its record is that of run %s, then %s; writes sent between its last read before the restart and the restart are not in it", l.segs[0].run, strings.Join(parts, ", "))}
}

func orEmpty(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}
