// Package host runs one kubelet device plugin per resource of a manifest:
// gRPC server, socket lifecycle, registration, kubelet-restart detection,
// restarts with backoff, hot reload, health checks, metrics and probes.
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"simple-device-plugin/cdi"
	"simple-device-plugin/discover"
	"simple-device-plugin/manifest"
	"simple-device-plugin/podresources"
)

// Config configures a Host.
type Config struct {
	// DevicePluginDir holds the kubelet's kubelet.sock and our sockets.
	DevicePluginDir string
	// NodeName feeds .Node in templates and selects resources by nodes:.
	NodeName string
	Logger   *slog.Logger
	// Metrics, if nil, are created.
	Metrics *Metrics
	// PollInterval re-checks sockets and kubelet.sock in case fsnotify
	// missed an event. Default 5 s.
	PollInterval time.Duration
	// Backoff for restarting a failed plugin. Default DefaultBackoff().
	Backoff Backoff
	// Registration is RegisterKubeletSocket (default) or RegisterPluginsRegistry.
	Registration Registration
	// PluginsRegistryDir holds the sockets in plugins-registry mode.
	// Default: plugins_registry next to DevicePluginDir.
	PluginsRegistryDir string
	// NUMANodesFile lists the machine's NUMA nodes, to warn about
	// topologies the kubelet cannot align; unreadable means no warning.
	NUMANodesFile string
	// CDISpecDir receives the CDI specs of resources with cdi.spec
	// (/var/run/cdi); empty refuses such resources.
	CDISpecDir string
	// CDIRegistryDirs are the node's CDI spec dirs (/etc/cdi,
	// /var/run/cdi), against which the CDI names of cdiDevices are
	// resolved; a device whose names do not resolve is Unhealthy. Empty
	// checks nothing.
	CDIRegistryDirs []string
	// PodResourcesSocket is the kubelet's PodResources API, read to say
	// which pod holds which device; empty reads nothing.
	PodResourcesSocket string
	// PodResourcesPeriod is its slow refresh (default 10 s); an Allocate
	// brings the next one forward.
	PodResourcesPeriod time.Duration
	// HostRoot is where the host's / is seen (its /dev and /sys), for
	// discover: resources. Default "/".
	HostRoot string
	// DiscoverRescan is the safety-net rescan behind file events for
	// discover: resources. Default discover.DefaultRescan.
	DiscoverRescan time.Duration
	// DRA serves the api: dra resources; nil leaves them unserved (and
	// /readyz failing).
	DRA DRAServer
	// AllocatedSeriesMax: resources with more devices get no per-device
	// sdp_device_allocated series; 0 is DefaultAllocatedSeriesMax,
	// negative gives none at all.
	AllocatedSeriesMax int
}

// DRAServer serves the api: dra resources as DRA drivers.
type DRAServer interface {
	// Run serves until ctx ends, then stops every driver.
	Run(ctx context.Context) error
	// Apply makes the drivers match the api: dra resources among served;
	// drivers that go are stopped when it returns. driverInUse tells a
	// driver some api: dra resource of the manifest still has (here or
	// on other nodes) from one none has, whose DeviceClass goes.
	Apply(served []*manifest.Resource, driverInUse func(driver string) bool)
	// Waiting names the DRA resources not registered with the kubelet.
	Waiting() []string
}

// Registration is how plugins make themselves known to the kubelet.
type Registration string

const (
	// RegisterKubeletSocket: each plugin calls Register on
	// <device-plugin-dir>/kubelet.sock, and again after a kubelet restart.
	RegisterKubeletSocket Registration = "kubelet-socket"
	// RegisterPluginsRegistry: each plugin's socket sits in the kubelet's
	// plugins_registry dir, where the kubelet's plugin watcher finds it.
	RegisterPluginsRegistry Registration = "plugins-registry"
)

// DefaultPluginsRegistryDir is the plugin watcher dir next to a device-plugin dir.
func DefaultPluginsRegistryDir(devicePluginDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(devicePluginDir)), "plugins_registry")
}

// AutoRegistration picks plugins-registry when the kubelet's plugin watcher
// dir exists (as every current kubelet has), kubelet-socket otherwise.
func AutoRegistration(pluginsRegistryDir string) Registration {
	if fi, err := os.Stat(pluginsRegistryDir); err == nil && fi.IsDir() {
		return RegisterPluginsRegistry
	}
	return RegisterKubeletSocket
}

// Host supervises the plugins of the current manifest.
type Host struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	applying sync.Mutex // one Apply at a time; held while removed plugins stop

	mu          sync.Mutex // guards what follows; never held while waiting
	group       *errgroup.Group
	groupCtx    context.Context
	stopping    bool
	plugins     map[string]*Plugin // by resource name
	bySocket    map[string]*Plugin // by socket file name
	current     *manifest.Manifest
	generation  int
	noNodeName  []string        // resources with nodes: not served for want of a node name
	draUnserved []string        // api: dra resources not served for want of a DRA server
	everServed  map[string]bool // every resource name served since start; replaced, never changed, once handed out

	machineNUMA []int // the machine's NUMA nodes; nil if unknown

	cdiDir      *cdi.Dir      // where specs of cdi.spec resources go; nil without CDISpecDir
	cdiRegistry *cdi.Registry // the node's CDI specs; nil without CDIRegistryDirs

	podRes *podresources.Watcher // who holds what; nil without PodResourcesSocket

	watching chan struct{} // closed once the socket dir is watched (or found unwatchable)
	applied  chan struct{} // closed once Run has applied its first manifest

	reg struct { // the registration connection shared by every plugin
		mu  sync.Mutex
		cur *regConn // nil until needed, and after its kubelet went away
	}
}

// New returns a host; Run starts it.
func New(cfg Config) *Host {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Second
	}
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff = DefaultBackoff()
	}
	if cfg.Registration == "" {
		cfg.Registration = RegisterKubeletSocket
	}
	if cfg.PluginsRegistryDir == "" {
		cfg.PluginsRegistryDir = DefaultPluginsRegistryDir(cfg.DevicePluginDir)
	}
	if cfg.HostRoot == "" {
		cfg.HostRoot = "/"
	}
	if cfg.DiscoverRescan <= 0 {
		cfg.DiscoverRescan = discover.DefaultRescan
	}
	if cfg.NUMANodesFile == "" {
		cfg.NUMANodesFile = DefaultNUMANodesFile
	}
	h := &Host{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  cfg.Metrics,
		plugins:  map[string]*Plugin{},
		bySocket: map[string]*Plugin{},
		watching: make(chan struct{}),
		applied:  make(chan struct{}),
	}
	if cfg.PodResourcesSocket != "" {
		h.podRes = podresources.New(podresources.Config{
			Socket: cfg.PodResourcesSocket, Period: cfg.PodResourcesPeriod, Ours: h.ours, Logger: cfg.Logger,
			Refreshed: func(s podresources.State) { h.metrics.podResRefreshes.WithLabelValues(string(s)).Inc() },
		})
		limit := cfg.AllocatedSeriesMax
		if limit == 0 {
			limit = DefaultAllocatedSeriesMax
		}
		if err := h.metrics.Registry.Register(newAllocationsCollector(h, limit)); err != nil {
			// Only a Metrics shared by two hosts gets here.
			h.log.Error("who-holds-what metrics not served", "err", err)
		}
	}
	var err error
	if h.machineNUMA, err = readNUMANodes(cfg.NUMANodesFile); err != nil {
		h.log.Debug("machine NUMA nodes unknown; not checking topologies against them", "err", err)
	}
	return h
}

// Metrics returns the host's metrics.
func (h *Host) Metrics() *Metrics { return h.metrics }

// ErrNotRunning is returned by Apply before Run or after it returned.
var ErrNotRunning = errors.New("host is not running")

// Run serves m until ctx ends, then stops every plugin. An unusable socket
// dir is an error at once: a deployment mistake is not worth waiting out.
func (h *Host) Run(ctx context.Context, m *manifest.Manifest) error {
	if err := CheckDir(h.socketDir()); err != nil {
		return err
	}
	// The CDI side first: once the group is set, a reload may apply.
	if err := h.openCDI(m); err != nil {
		return err
	}
	defer h.closeCDI()
	g, gctx := errgroup.WithContext(ctx)
	h.mu.Lock()
	if h.group != nil {
		h.mu.Unlock()
		return errors.New("host is already running")
	}
	h.group, h.groupCtx = g, gctx
	h.mu.Unlock()

	g.Go(func() error { return h.watchDir(gctx) })
	if h.cfg.DRA != nil {
		g.Go(func() error { return h.cfg.DRA.Run(gctx) })
	}
	if h.podRes != nil {
		g.Go(func() error { return h.podRes.Run(gctx) })
	}
	if _, err := h.Apply(m); err != nil {
		return err
	}
	close(h.applied)
	<-gctx.Done()
	h.mu.Lock()
	h.stopping = true
	h.mu.Unlock()
	err := g.Wait()
	h.closeRegistrationConn()
	h.log.Info("stopped every plugin")
	return err
}

// socketDir is where the plugins' sockets go.
func (h *Host) socketDir() string {
	if h.cfg.Registration == RegisterPluginsRegistry {
		return h.cfg.PluginsRegistryDir
	}
	return h.cfg.DevicePluginDir
}

// CheckDir reports why dir cannot hold plugin sockets, or nil.
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return fmt.Errorf("socket dir %s: %w (is the kubelet's dir mounted into the container? set --device-plugin-dir)", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("socket dir %s is not a directory", dir)
	}
	if err := syscall.Access(dir, 0x2|0x1); err != nil { // W_OK|X_OK
		return fmt.Errorf("socket dir %s is not writable: %w (run as root or give write access to the dir)", dir, err)
	}
	return nil
}

// ApplyResult says what Apply did.
type ApplyResult struct {
	Added, Updated, Removed, Unchanged, Skipped []string
	// Pending are changed resources still served as before: their CDI
	// spec could not be written yet (retried every poll).
	Pending []string
}

// Apply makes the running plugins match m; removed ones have stopped when
// it returns. h.mu is not held while they stop, so /readyz and the socket
// watcher never wait for a removal.
func (h *Host) Apply(m *manifest.Manifest) (ApplyResult, error) {
	h.applying.Lock()
	defer h.applying.Unlock()
	var res ApplyResult
	served, skipped := m.ForNode(h.cfg.NodeName)
	served, viaDRA := manifest.ByAPI(served)
	want := make(map[string]bool, len(served))
	for _, r := range served {
		want[r.Name] = true
	}

	h.mu.Lock()
	if h.group == nil || h.stopping {
		h.mu.Unlock()
		return res, ErrNotRunning
	}
	var removed []*Plugin
	for name, p := range h.plugins {
		if !want[name] {
			p.cancel(errRemoved)
			removed = append(removed, p)
			delete(h.plugins, name)
			delete(h.bySocket, socketBase(p))
			res.Removed = append(res.Removed, name)
		}
	}
	h.mu.Unlock()
	for _, p := range removed {
		<-p.done
		h.metrics.forget(p.name)
		p.log.Info("resource removed: sent an empty device list, stopped, removed its socket", "socket", p.socketPath)
		// A resource left out here only for its nodes: (or for want of a
		// node name) is still in the manifest: its spec stays.
		if p.snapshot().res.CDIKind() != "" && (m.Resource(p.name) == nil || m.Resource(p.name).CDIKind() == "") {
			h.removeSpec(p.name)
		}
	}

	// Between the plugins that went and those that come: a resource moving
	// between APIs is never served through both.
	h.applyDRA(m, viaDRA)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopping {
		return res, ErrNotRunning
	}
	for _, r := range served {
		p, ok := h.plugins[r.Name]
		switch {
		case !ok:
			if !h.everServed[r.Name] {
				h.everServed = maps.Clone(h.everServed)
				if h.everServed == nil {
					h.everServed = map[string]bool{}
				}
				h.everServed[r.Name] = true
			}
			h.start(r)
			h.warnUnknownNUMANodes(r)
			res.Added = append(res.Added, r.Name)
		case p.snapshot().res.SameSpec(r):
			p.specMu.Lock()
			if p.pendingSpec != nil {
				// A reload reverted before its spec could be written:
				// discovery goes back to what is served.
				p.pendingSpec = nil
				p.materialize(r)
			}
			p.specMu.Unlock()
			res.Unchanged = append(res.Unchanged, r.Name)
		default:
			p.specMu.Lock()
			r := p.materialize(r)
			after, err := p.applySpec(r)
			if err != nil {
				p.specMu.Unlock()
				p.log.Error("cannot write the CDI spec of the reload: still serving the last good device list; retrying every poll", "err", err)
				res.Pending = append(res.Pending, r.Name)
				continue
			}
			devicesChanged, reregister := p.update(r)
			after()
			p.specMu.Unlock()
			if devicesChanged {
				h.warnUnknownNUMANodes(r)
			}
			res.Updated = append(res.Updated, r.Name)
			p.log.Info("resource updated", "devices_changed", devicesChanged, "reregister", reregister, "devices", len(r.IDs))
		}
	}
	for _, r := range skipped {
		res.Skipped = append(res.Skipped, r.Name)
	}
	h.noNodeName = nil
	switch {
	case len(skipped) > 0 && h.cfg.NodeName == "":
		// Most likely a DaemonSet without NODE_NAME: nothing says which
		// node this is, so /readyz fails until it is fixed.
		h.noNodeName = res.Skipped
		h.log.Warn("resources with nodes: are not served: this process has no node name; set --node-name, or NODE_NAME from the downward API (spec.nodeName)", "resources", res.Skipped)
	case len(skipped) > 0:
		h.log.Info("resources not served on this node (nodes: does not match)", "node", h.cfg.NodeName, "resources", res.Skipped)
	}
	h.current = m
	h.generation++
	h.metrics.manifestInfo.Reset()
	h.metrics.manifestInfo.WithLabelValues(m.Hash).Set(1)
	h.metrics.manifestGen.Set(float64(h.generation))
	h.metrics.resources.Set(float64(len(h.plugins)))
	for _, l := range [][]string{res.Added, res.Updated, res.Removed, res.Unchanged, res.Skipped} {
		slices.Sort(l)
	}
	return res, nil
}

// start launches a plugin for r in the host's errgroup. h.mu is held.
func (h *Host) start(r *manifest.Resource) {
	p := newPlugin(h, r)
	ctx, cancel := context.WithCancelCause(h.groupCtx)
	p.cancel = cancel
	h.plugins[r.Name] = p
	h.bySocket[socketBase(p)] = p
	h.group.Go(func() error {
		p.run(ctx)
		return nil
	})
}

// Running reports whether Run has started the plugins and not yet stopped.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current != nil && !h.stopping
}

// Ready reports whether every resource served on this node is registered
// with the kubelet right now, and names those that are not.
func (h *Host) Ready() (bool, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.group == nil || h.stopping {
		return false, nil
	}
	var waiting []string
	for name, p := range h.plugins {
		if !p.registered.Load() {
			waiting = append(waiting, name)
		}
	}
	waiting = append(waiting, h.draUnserved...)
	if h.cfg.DRA != nil {
		waiting = append(waiting, h.cfg.DRA.Waiting()...)
	}
	slices.Sort(waiting)
	return len(waiting) == 0, waiting
}

// NoNodeName names the resources left out because they have nodes: and
// the host has no node name; /readyz fails while there are any.
func (h *Host) NoNodeName() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.noNodeName)
}

// Status describes one served resource.
type Status struct {
	Resource   string
	Socket     string
	Registered bool
	Devices    int
	Healthy    int
}

// Statuses lists the served resources, sorted by name.
func (h *Host) Statuses() []Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Status, 0, len(h.plugins))
	for _, p := range h.plugins {
		s := p.snapshot()
		out = append(out, Status{Resource: p.name, Socket: p.socketPath, Registered: p.registered.Load(), Devices: len(s.res.IDs), Healthy: s.healthy})
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Resource, b.Resource) })
	return out
}

// Manifest returns the manifest being served.
func (h *Host) Manifest() *manifest.Manifest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current
}

func (h *Host) forEachPlugin(fn func(*Plugin)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.plugins {
		fn(p)
	}
}
