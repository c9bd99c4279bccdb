package host

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/podresources"
)

// DefaultAllocatedSeriesMax bounds the per-device sdp_device_allocated
// series: a resource with more devices gets none (its /allocations stay
// complete).
const DefaultAllocatedSeriesMax = 1024

// HealthRemoved marks a device the kubelet says a pod holds that the
// manifest served on this node no longer has: a reload removed it while
// the pod ran.
const HealthRemoved = "Removed"

// Allocations says which container holds each device of the host's
// resources, as the kubelet's PodResources API last told.
type Allocations struct {
	// State: ok, off (no PodResources socket) or error (the last read
	// failed; the holders are from the last one that worked).
	State     podresources.State `json:"state"`
	Reason    string             `json:"reason,omitempty"`
	Refreshed *time.Time         `json:"refreshed,omitempty"`
	Resources []ResourceHoldings `json:"resources"`
}

// ResourceHoldings are one resource's devices and their holders.
type ResourceHoldings struct {
	Resource string `json:"resource"`
	// Served is false for a resource removed while pods held its devices.
	Served  bool             `json:"served"`
	Free    int              `json:"free"` // healthy and held by nobody
	Devices []DeviceHoldings `json:"devices"`
}

// DeviceHoldings is one device, its health and who holds it.
type DeviceHoldings struct {
	ID      string                `json:"id"`
	Health  string                `json:"health"` // Healthy, Unhealthy or Removed
	Holders []podresources.Holder `json:"holders,omitempty"`
}

// Allocations joins the served devices and their health with the last
// PodResources answer.
func (h *Host) Allocations() Allocations {
	snap := &podresources.Snapshot{State: podresources.StateOff, Err: "--pod-resources-socket is not set"}
	if h.podRes != nil {
		snap = h.podRes.Snapshot()
	}
	out := Allocations{State: snap.State, Reason: snap.Err, Resources: []ResourceHoldings{}}
	if !snap.Refreshed.IsZero() {
		at := snap.Refreshed.Round(0) // wall clock only: what the JSON carries
		out.Refreshed = &at
	}
	h.mu.Lock()
	snaps := make(map[string]*snapshot, len(h.plugins))
	for name, p := range h.plugins {
		snaps[name] = p.snapshot()
	}
	h.mu.Unlock()

	names := slices.Sorted(maps.Keys(snaps))
	for name := range snap.Holdings {
		if snaps[name] == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		held := snap.Holdings[name]
		s := snaps[name]
		r := ResourceHoldings{Resource: name, Served: s != nil}
		if s != nil {
			r.Devices = make([]DeviceHoldings, len(s.res.IDs))
			for i, id := range s.res.IDs {
				d := DeviceHoldings{ID: id, Health: pluginapi.Healthy, Holders: held[id]}
				if s.unhealthy[i] {
					d.Health = pluginapi.Unhealthy
				} else if d.Holders == nil {
					r.Free++
				}
				r.Devices[i] = d
			}
		}
		// Held, but no longer served: after the served ones, by ID.
		for _, id := range slices.Sorted(maps.Keys(held)) {
			if s == nil || !s.res.Has(id) {
				r.Devices = append(r.Devices, DeviceHoldings{ID: id, Health: HealthRemoved, Holders: held[id]})
			}
		}
		out.Resources = append(out.Resources, r)
	}
	return out
}

// ours lists the resource names whose devices the PodResources answer is
// kept for: every name served since start, so a removed resource still
// held by a pod shows.
func (h *Host) ours() map[string]bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.everServed
}

// allocationsCollector serves sdp_device_allocated and sdp_devices_free,
// built at scrape time from Allocations, so nothing has to forget series.
type allocationsCollector struct {
	h         *Host
	max       int
	allocated *prometheus.Desc
	free      *prometheus.Desc
}

func newAllocationsCollector(h *Host, max int) *allocationsCollector {
	return &allocationsCollector{
		h:   h,
		max: max,
		allocated: prometheus.NewDesc("sdp_device_allocated",
			"1 for each device and container holding it, from the kubelet's PodResources API; none for resources with more devices than --allocated-series-max.",
			[]string{"resource", "device", "namespace", "pod", "container"}, nil),
		free: prometheus.NewDesc("sdp_devices_free",
			"Healthy devices no pod holds, from the kubelet's PodResources API; absent while it has not answered.",
			[]string{"resource"}, nil),
	}
}

func (c *allocationsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.allocated
	ch <- c.free
}

func (c *allocationsCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.h.Allocations()
	if a.Refreshed == nil {
		return
	}
	for _, r := range a.Resources {
		if r.Served {
			ch <- constGauge(c.free, float64(r.Free), r.Resource)
		}
		if len(r.Devices) > c.max {
			continue
		}
		for _, d := range r.Devices {
			for _, who := range d.Holders {
				ch <- constGauge(c.allocated, 1, r.Resource, d.ID, who.Namespace, who.Pod, who.Container)
			}
		}
	}
}

// constGauge is a gauge sample, or the error in its place (reported by the
// scrape, not a panic).
func constGauge(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}
