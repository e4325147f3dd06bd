// Package probeapi holds the wire types of the shop's failover prober: the
// JSON documents served on GET /timeline and GET /verify.
//
// It imports only the standard library, so that a client (the lab) can
// decode the prober's answers without pulling in the server. Times are
// encoded by encoding/json as RFC 3339 with nanoseconds; the prober always
// sends them in UTC.
package probeapi

import "time"

// Store names used as keys of Timeline.Stores and Verification.Stores.
const (
	// StorePostgres is the PostgreSQL primary, written through its Service.
	StorePostgres = "postgres"
	// StoreRedis is the Redis master, written through Sentinel.
	StoreRedis = "redis"
)

// Timeline is the answer of GET /timeline: what every write of this prober
// run did, summarised per store.
type Timeline struct {
	// Run identifies this prober process's run; sequence numbers are
	// unique within a run.
	Run string `json:"run"`
	// Interval is the time between two writes, in milliseconds.
	IntervalMS int64 `json:"interval_ms"`
	// Started is when the prober sent its first write.
	Started time.Time `json:"started"`
	// Now is when this timeline was computed.
	Now time.Time `json:"now"`
	// Stores maps a store name (StorePostgres, StoreRedis) to its timeline.
	Stores map[string]StoreTimeline `json:"stores"`
}

// StoreTimeline summarises the writes to one store that the prober still
// holds: those of its last Retain (see FirstSeq).
type StoreTimeline struct {
	// FirstSeq and LastSeq are the sequence numbers of the oldest and the
	// latest write held; zero before the first write. Earlier writes were
	// forgotten.
	FirstSeq int64 `json:"first_seq,omitempty"`
	LastSeq  int64 `json:"last_seq,omitempty"`
	// Attempted counts the writes sent.
	Attempted int64 `json:"attempted"`
	// Acked counts the writes the store acknowledged.
	Acked int64 `json:"acked"`
	// Failed counts the writes that returned an error or timed out.
	Failed int64 `json:"failed"`
	// InFlight counts the writes without an answer yet.
	InFlight int64 `json:"in_flight"`
	// LastAck is the acknowledgement time of the latest acknowledged
	// write; zero if none.
	LastAck time.Time `json:"last_ack,omitzero"`
	// Outages are the windows in which writes failed, oldest first.
	Outages []Window `json:"outages"`
	// Samples are the individual writes, in sequence order; only present
	// when asked for with GET /timeline?samples=true, and with &since=N
	// only those after N.
	Samples []Sample `json:"samples,omitempty"`
}

// Window is one outage: a run of consecutive failed writes.
type Window struct {
	// Start is the send time of the first failed write of the run.
	Start time.Time `json:"start"`
	// End is the acknowledgement time of the first successful write after
	// the run; nil while the outage lasts.
	End *time.Time `json:"end,omitempty"`
	// LastAckBefore is the acknowledgement time of the last successful
	// write sent before Start; nil if there was none.
	LastAckBefore *time.Time `json:"last_ack_before,omitempty"`
	// FirstSeq and LastSeq are the sequence numbers of the first and last
	// failed write of the run.
	FirstSeq int64 `json:"first_seq"`
	LastSeq  int64 `json:"last_seq"`
	// Failed is the number of failed writes in the run.
	Failed int64 `json:"failed"`
	// FirstError is the error of the first failed write.
	FirstError string `json:"first_error"`
}

// Sample is one write.
type Sample struct {
	// Seq is the sequence number written.
	Seq int64 `json:"seq"`
	// Sent is when the write was sent.
	Sent time.Time `json:"sent"`
	// Acked is when the store acknowledged the write; zero if it did not.
	Acked time.Time `json:"acked,omitzero"`
	// Error is the error of a failed write.
	Error string `json:"error,omitempty"`
}

// Verification is the answer of GET /verify: every acknowledged write
// read back from each store.
type Verification struct {
	// Run identifies the prober run whose writes were checked.
	Run string `json:"run"`
	// Checked is when the read-back finished.
	Checked time.Time `json:"checked"`
	// Stores maps a store name to its verification.
	Stores map[string]StoreVerification `json:"stores"`
}

// StoreVerification is the read-back of one store.
type StoreVerification struct {
	// Acked is the number of acknowledged writes checked.
	Acked int64 `json:"acked"`
	// Found is the number of distinct sequence numbers found in the store
	// (acknowledged or not: a write that timed out may still have landed).
	Found int64 `json:"found"`
	// Missing lists acknowledged sequence numbers absent from the store:
	// acknowledged writes that were lost.
	Missing []int64 `json:"missing"`
	// Duplicates lists sequence numbers present more than once.
	Duplicates []int64 `json:"duplicates"`
	// UnackedPresent lists sequence numbers whose write failed or timed
	// out but which the store nevertheless holds.
	UnackedPresent []int64 `json:"unacked_present"`
	// Error is set when the store could not be read back; the other
	// fields are then empty.
	Error string `json:"error,omitempty"`
}
