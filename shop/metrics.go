package shop

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// webMetrics are the Prometheus metrics of the web mode.
type webMetrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	checkouts       *prometheus.CounterVec
	enqueueFailures prometheus.Counter
}

// newRegistry returns a registry with the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newWebMetrics(reg prometheus.Registerer) *webMetrics {
	m := &webMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shop_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shop_checkouts_total",
			Help: "Checkouts by result: ok, out_of_stock, empty_cart, error.",
		}, []string{"result"}),
		enqueueFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shop_fulfilment_enqueue_failures_total",
			Help: "Orders committed whose fulfilment job could not be enqueued (beat re-enqueues them).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.checkouts, m.enqueueFailures)
	return m
}
