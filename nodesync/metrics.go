package nodesync

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the syncer's Prometheus metrics, on a registry of its own
// so that several syncers (tests) never share counters.
type metrics struct {
	registry    *prometheus.Registry
	syncs       *prometheus.CounterVec // result
	inSync      prometheus.Gauge
	lastSuccess prometheus.Gauge
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(reg)
	m := &metrics{
		registry: reg,
		syncs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_sync_total",
			Help: "Checks of the host manifest, by result: written, unchanged (already equal), invalid (each refused version once), error (unreadable source, no validator, failed write).",
		}, []string{"result"}),
		inSync: f.NewGauge(prometheus.GaugeOpts{
			Name: "sdp_sync_in_sync",
			Help: "1 while the host manifest equals the last valid source manifest.",
		}),
		lastSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "sdp_sync_last_success_timestamp_seconds",
			Help: "When the host manifest was last found or made equal to the source manifest (Unix time).",
		}),
	}
	// Make every result visible at zero.
	for _, r := range []string{resultWritten, resultUnchanged, resultInvalid, resultError} {
		m.syncs.WithLabelValues(r)
	}
	return m
}
