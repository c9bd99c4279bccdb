package host

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
	cdiSpecWrites    *prometheus.CounterVec // resource, result
	cdiUnresolved    *prometheus.GaugeVec   // resource, cdi_device
	podResRefreshes  *prometheus.CounterVec // result
	discovered       *prometheus.GaugeVec   // resource
	discoverLeftOut  *prometheus.GaugeVec   // resource
}

// NewMetrics creates the metrics on a fresh registry, with the Go and
// process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(reg)
	gauges := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return f.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	counters := func(name, help string, labels ...string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		Registry:         reg,
		devices:          gauges("sdp_devices", "Devices advertised to the kubelet, by resource and health.", "resource", "health"),
		registered:       gauges("sdp_resource_registered", "1 while the resource is registered with the kubelet.", "resource"),
		allocations:      counters("sdp_allocate_requests_total", "Allocate calls served, by resource.", "resource"),
		allocationErrors: counters("sdp_allocate_errors_total", "Allocate calls refused, by resource and gRPC code.", "resource", "code"),
		allocateSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "sdp_allocate_duration_seconds",
			Help:    "Time to answer one Allocate call, all resources.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3},
		}),
		preferredCalls:  counters("sdp_preferred_allocation_requests_total", "GetPreferredAllocation calls served, by resource.", "resource"),
		registrations:   counters("sdp_registrations_total", "Successful registrations with the kubelet, by resource.", "resource"),
		restarts:        counters("sdp_plugin_restarts_total", "Plugin restarts, by resource and reason.", "resource", "reason"),
		reloads:         counters("sdp_manifest_reloads_total", "Manifest reloads, by result (applied, unchanged, invalid).", "result"),
		manifestInfo:    gauges("sdp_manifest_info", "1 for the hash of the manifest being served.", "hash"),
		manifestGen:     f.NewGauge(prometheus.GaugeOpts{Name: "sdp_manifest_generation", Help: "Count of manifests applied since start (1 = the first)."}),
		resources:       f.NewGauge(prometheus.GaugeOpts{Name: "sdp_resources", Help: "Resources served on this node."}),
		cdiSpecWrites:   counters("sdp_cdi_spec_writes_total", "Writes of generated CDI specs, by resource and result (ok, error).", "resource", "result"),
		podResRefreshes: counters("sdp_pod_resources_refreshes_total", "Reads of the kubelet's PodResources API, by result (ok, error, off: no socket).", "result"),
		discovered:      gauges("sdp_discovered_matches", "Devices discovery found on the host for a discover: resource, before share (a group counts once; 0: none on this node).", "resource"),
		discoverLeftOut: gauges("sdp_discover_left_out", "Matches or devices of a discover: resource left out now: not device nodes, dangling links, IDs taken twice or invalid, beyond the bound.", "resource"),
		cdiUnresolved:   gauges("sdp_cdi_unresolved", "1 for each CDI device a resource hands out that no spec on the node defines; its devices are Unhealthy.", "resource", "cdi_device"),
	}
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

// forgetDiscovery drops the discovery series of a resource that no longer
// discovers its devices.
func (m *Metrics) forgetDiscovery(resource string) {
	m.discovered.DeleteLabelValues(resource)
	m.discoverLeftOut.DeleteLabelValues(resource)
}

// forget drops every series of a resource that is no longer served.
func (m *Metrics) forget(resource string) {
	for _, v := range []*prometheus.GaugeVec{m.devices, m.registered, m.cdiUnresolved, m.discovered, m.discoverLeftOut} {
		v.DeletePartialMatch(prometheus.Labels{"resource": resource})
	}
	for _, v := range []*prometheus.CounterVec{m.allocations, m.allocationErrors, m.preferredCalls, m.registrations, m.restarts, m.cdiSpecWrites} {
		v.DeletePartialMatch(prometheus.Labels{"resource": resource})
	}
}
