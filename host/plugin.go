package host

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/discover"
	"simple-device-plugin/manifest"
)

// Plugin is the device plugin of one resource: what it serves (a snapshot
// swapped atomically on reload or health change) and its lifecycle (run),
// kept apart so the RPC handlers never block on the lifecycle.
type Plugin struct {
	name       string
	socketPath string
	host       *Host
	log        *slog.Logger

	state      atomic.Pointer[snapshot]
	mu         sync.Mutex    // guards changed, probe, cdiBad, unresolved
	changed    chan struct{} // closed and replaced whenever state changes
	probe      []bool        // unhealthy by device index, from the health check; nil if none
	cdiBad     []bool        // unhealthy by device index: a CDI name that does not resolve; nil if none
	unresolved []string      // the CDI names that do not resolve

	specMu      sync.Mutex                // one spec write and the update it allows at a time
	pendingSpec *manifest.Resource        // a reload waiting for its CDI spec to be written; guarded by specMu
	base        *manifest.Resource        // as the manifest declares it, before discovery; guarded by specMu
	found       []discover.Device         // what discovery found last; guarded by specMu
	leftOut     map[discover.Problem]bool // logged already and still so; guarded by specMu
	rediscover  chan struct{}             // what to discover changed: start over

	check      chan struct{} // something on disk may have changed: re-check the session
	healthWake chan struct{} // the resource changed: probe its health check now
	wake       chan struct{} // the kubelet (or the dir) came back: retry now
	reregister atomic.Bool   // registration options changed: register again
	registered atomic.Bool

	cancel  context.CancelCauseFunc
	done    chan struct{}
	started chan struct{} // closed once the first session was tried: listening, or failed

	mAllocations prometheus.Counter // resolved once, not per call
	mPreferred   prometheus.Counter
	mRegistered  prometheus.Gauge
}

// snapshot is everything an RPC needs, immutable once published. It keeps
// no device list, so a large manifest holds its device IDs once.
type snapshot struct {
	res       *manifest.Resource
	unhealthy []bool // by device index: static list or health probe
	options   *pluginapi.DevicePluginOptions
	healthy   int
	topology  []*pluginapi.TopologyInfo // by NUMA node, shared by every device list sent
}

// errRemoved is the cause when a resource leaves the manifest.
var errRemoved = errors.New("resource removed from the manifest")

func newPlugin(h *Host, res *manifest.Resource) *Plugin {
	p := &Plugin{
		name:         res.Name,
		socketPath:   filepath.Join(h.socketDir(), manifest.SocketName(res.Name)),
		host:         h,
		log:          h.log.With("resource", res.Name),
		changed:      make(chan struct{}),
		check:        make(chan struct{}, 1),
		healthWake:   make(chan struct{}, 1),
		wake:         make(chan struct{}, 1),
		rediscover:   make(chan struct{}, 1),
		done:         make(chan struct{}),
		started:      make(chan struct{}),
		base:         res,
		mAllocations: h.metrics.allocations.WithLabelValues(res.Name),
		mPreferred:   h.metrics.preferredCalls.WithLabelValues(res.Name),
		mRegistered:  h.metrics.registered.WithLabelValues(res.Name),
	}
	if res.Discovers() {
		p.found = h.scan(res)
		res, _ = res.WithFound(p.found, MaxDiscovered) // what is left out is logged by the watcher
	}
	p.setCDIHealth(h.unresolvedCDI(res, false)) // the spec is written before registering
	p.publish(res)                              // p is not shared yet: no lock needed
	return p
}

func (p *Plugin) snapshot() *snapshot { return p.state.Load() }

// watch returns the current snapshot and a channel closed at its next change.
func (p *Plugin) watch() (*snapshot, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.Load(), p.changed
}

// publish swaps in a snapshot of res with the current health, waking every
// ListAndWatch stream. p.mu is held.
func (p *Plugin) publish(res *manifest.Resource) {
	s := buildSnapshot(res, p.probe, p.cdiBad)
	p.state.Store(s)
	close(p.changed)
	p.changed = make(chan struct{})
	p.host.metrics.devices.WithLabelValues(p.name, pluginapi.Healthy).Set(float64(s.healthy))
	p.host.metrics.devices.WithLabelValues(p.name, pluginapi.Unhealthy).Set(float64(len(res.IDs) - s.healthy))
}

// update applies a changed resource from a reload and says what changed.
// Only a change of the registration options needs a new registration.
func (p *Plugin) update(res *manifest.Resource) (devicesChanged, reregister bool) {
	old := p.snapshot().res
	devicesChanged, reregister = !old.SameDevices(res), !old.SameRegistration(res)
	cdiBad, missing := p.host.unresolvedCDI(res, true)
	p.mu.Lock()
	if devicesChanged {
		p.probe = nil // a new device list: the health check starts over
	}
	p.setCDIHealth(cdiBad, missing)
	p.publish(res)
	p.mu.Unlock()
	poke(p.healthWake)
	if reregister {
		p.reregister.Store(true)
		poke(p.check)
	}
	return devicesChanged, reregister
}

// setProbe records health-check results (unhealthy by device index) and
// publishes only if they differ from what is served.
func (p *Plugin) setProbe(res *manifest.Resource, unhealthy []bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state.Load().res != res {
		return false // a reload replaced the resource meanwhile; the next probe covers it
	}
	if slices.Equal(p.probe, unhealthy) {
		return false
	}
	p.probe = unhealthy
	p.publish(res)
	return true
}

func buildSnapshot(res *manifest.Resource, probe, cdiBad []bool) *snapshot {
	s := &snapshot{
		res:       res,
		unhealthy: make([]bool, len(res.IDs)),
		options: &pluginapi.DevicePluginOptions{
			PreStartRequired:                res.Spec.PreStartRequired,
			GetPreferredAllocationAvailable: true,
		},
	}
	for i, id := range res.IDs {
		if node, ok := res.NUMANode(i); ok {
			for len(s.topology) <= node {
				s.topology = append(s.topology, &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(len(s.topology))}}})
			}
		}
		bad := res.StaticUnhealthy(id) || (i < len(probe) && probe[i]) || (i < len(cdiBad) && cdiBad[i])
		s.unhealthy[i] = bad
		if !bad {
			s.healthy++
		}
	}
	return s
}

// poke sends on a one-slot channel without blocking: one pending signal is
// enough, since the receiver re-checks everything.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
