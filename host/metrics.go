package host

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the host's Prometheus metrics, on a registry of its own so
// several hosts (tests, simulate) never share counters.
type Metrics struct {
	Registry *prometheus.Registry

	devices          *prometheus.GaugeVec   // resource, health
	registered       *prometheus.GaugeVec   // resource
	allocations      *prometheus.CounterVec // resource
	allocationErrors *prometheus.CounterVec // resource, code
	allocateSeconds  prometheus.Histogram
	preferredCalls   *prometheus.CounterVec // resource
	registrations    *prometheus.CounterVec // resource
	restarts         *prometheus.CounterVec // resource, reason
	reloads          *prometheus.CounterVec // result
	manifestInfo     *prometheus.GaugeVec   // hash
	manifestGen      prometheus.Gauge
	resources        prometheus.Gauge
}

// NewMetrics creates the metrics on a fresh registry, with the Go and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		devices: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sdp_devices", Help: "Devices advertised to the kubelet, by resource and health.",
		}, []string{"resource", "health"}),
		registered: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sdp_resource_registered", Help: "1 while the resource is registered with the kubelet.",
		}, []string{"resource"}),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_allocate_requests_total", Help: "Allocate calls served, by resource.",
		}, []string{"resource"}),
		allocationErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_allocate_errors_total", Help: "Allocate calls refused, by resource and gRPC code.",
		}, []string{"resource", "code"}),
		allocateSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sdp_allocate_duration_seconds",
			Help:    "Time to answer one Allocate call, all resources.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3},
		}),
		preferredCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_preferred_allocation_requests_total", Help: "GetPreferredAllocation calls served, by resource.",
		}, []string{"resource"}),
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_registrations_total", Help: "Successful registrations with the kubelet, by resource.",
		}, []string{"resource"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_plugin_restarts_total", Help: "Plugin restarts, by resource and reason.",
		}, []string{"resource", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sdp_manifest_reloads_total", Help: "Manifest reloads, by result (applied, unchanged, invalid).",
		}, []string{"result"}),
		manifestInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sdp_manifest_info", Help: "1 for the hash of the manifest being served.",
		}, []string{"hash"}),
		manifestGen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sdp_manifest_generation", Help: "Count of manifests applied since start (1 = the first).",
		}),
		resources: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sdp_resources", Help: "Resources served on this node.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.devices, m.registered, m.allocations, m.allocationErrors, m.allocateSeconds,
		m.preferredCalls, m.registrations, m.restarts, m.reloads, m.manifestInfo, m.manifestGen, m.resources,
	)
	// Make the reload counters visible at zero.
	for _, r := range []string{reloadApplied, reloadUnchanged, reloadInvalid} {
		m.reloads.WithLabelValues(r)
	}
	return m
}

// Reload results.
const (
	reloadApplied   = "applied"
	reloadUnchanged = "unchanged"
	reloadInvalid   = "invalid"
)

// forget drops every series of a resource that is no longer served.
func (m *Metrics) forget(resource string) {
	for _, v := range []*prometheus.GaugeVec{m.devices, m.registered} {
		v.DeletePartialMatch(prometheus.Labels{"resource": resource})
	}
	for _, v := range []*prometheus.CounterVec{m.allocations, m.allocationErrors, m.preferredCalls, m.registrations, m.restarts} {
		v.DeletePartialMatch(prometheus.Labels{"resource": resource})
	}
}
