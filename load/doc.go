// Package load is the lab's load generator: a measuring instrument that keeps
// its figures true while the target misbehaves.
//
// A [Scenario] is data: weighted user behaviours, each a sequence of HTTP
// steps with templated paths and bodies, expected statuses, values extracted
// from responses and think time between steps. [DefaultScenario] is the
// reference jewelry shop's six behaviours.
//
// [Run] drives a scenario in one of two models:
//
//   - closed: N virtual users, spawned at a rate, each looping over weighted
//     behaviours with its own cookie jar. Latency is recorded raw (from the
//     moment the request was sent) and corrected for coordinated omission:
//     when a response takes longer than the user's usual cycle, the requests
//     the user would have sent meanwhile are recorded with the latency they
//     would have seen, measured from the time each was due.
//   - open: behaviour iterations start at an arrival rate (constant or
//     ramping) whatever the target does, so a stalled target does not lower
//     the offered load; latency is measured from the scheduled start (less
//     up to 1 ms of timer resolution), and how late the generator sent is
//     reported as its schedule lag.
//
// Figures are kept per endpoint (step name) and overall in HDR histograms,
// with failures by [Class], and in a per-second [Series] whose memory stays
// bounded for any run length. Requests are attributed to the second they were
// due, on the injected [Clock], so that a caller can line them up with fault
// windows it marks on the same clock.
//
// Requests go out through fasthttp's client on keep-alive connections shared
// by the population: each user writes its request and reads the response on
// its own goroutine, without allocating, so the generator costs less CPU per
// request than a bare net/http loop (make bench-load). A request is sent
// once; only an idempotent one that found its idle keep-alive connection
// closed by the target is sent again on a new connection, as browsers do.
package load
