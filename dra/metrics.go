package dra

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the DRA drivers' series.
type Metrics struct {
	prepares      *prometheus.CounterVec
	prepared      *prometheus.GaugeVec
	classApplies  *prometheus.CounterVec
	publishErrors *prometheus.CounterVec
}

// newMetrics makes the series and registers them with reg (if not nil),
// returning the error of one that could not be registered.
func newMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		prepares: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_dra_prepares_total", Help: "NodePrepareResources and NodeUnprepareResources calls per claim, by resource, operation and result.",
		}, []string{"resource", "operation", "result"}),
		prepared: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sdp_dra_prepared_claims", Help: "Claims prepared on this node and not yet unprepared, by resource.",
		}, []string{"resource"}),
		classApplies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_dra_class_applies_total", Help: "Server-side applies of a resource's DeviceClass, by result (ok, conflict, not_ours, error).",
		}, []string{"resource", "result"}),
		publishErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_dra_publish_errors_total", Help: "ResourceSlice writes the API server failed or refused (retried), by resource.",
		}, []string{"resource"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.prepares, m.prepared, m.classApplies, m.publishErrors} {
			if err := reg.Register(c); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// forget drops the gauge of a resource no longer served.
func (m *Metrics) forget(resource string) {
	m.prepared.DeleteLabelValues(resource)
}
