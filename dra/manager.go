package dra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	resourceapply "k8s.io/client-go/applyconfigurations/resource/v1"
	"k8s.io/client-go/kubernetes"

	"simple-device-plugin/cdi"
	"simple-device-plugin/manifest"
)

// Config configures a Manager.
type Config struct {
	// PluginDir holds each driver's dir: its socket and checkpoint
	// (/var/lib/kubelet/plugins).
	PluginDir string
	// RegistryDir is the kubelet's plugin watcher dir
	// (/var/lib/kubelet/plugins_registry).
	RegistryDir string
	// Node is this node's name: the pool and the slices' node.
	Node string
	// CDI is where the specs of prepared claims go.
	CDI *cdi.Dir
	// Client returns the API client; called when first needed, and again
	// after it failed.
	Client func() (kubernetes.Interface, error)
	// Resolves reports whether a CDI name of cdiDevices resolves on the
	// node; nil resolves everything.
	Resolves func(name string) bool
	Logger   *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Retry is the first wait after a failure, doubled up to a minute.
	// Default 1 s.
	Retry time.Duration
}

// Manager runs one driver per api: dra resource served on this node and
// keeps their DeviceClasses applied.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	kick    chan struct{}

	// work is held by Apply and reconcile throughout, API calls included;
	// mu only for short reads and writes, so Statuses (/readyz) never
	// waits for the API server.
	work    sync.Mutex
	client  kubernetes.Interface // under work
	mu      sync.Mutex
	ctx     context.Context   // Run's; nil before Run
	drivers map[string]*entry // by resource name
	dead    []stopped         // drivers that failed, to stop
}

// stopped is a driver whose helper failed: stopped by the next reconcile.
type stopped struct {
	drv    *driver
	cancel context.CancelFunc
}

// entry is a resource the manager should serve, and how far it got.
// Fields are written under both work and mu (drv and failed also under mu
// alone, by a failing driver), so either lock reads them.
type entry struct {
	res       *manifest.Resource
	drv       *driver // nil until started
	cancel    context.CancelFunc
	failed    error     // why it is not running
	classDone bool      // the DeviceClass is applied for this version
	classAt   time.Time // when to apply it again, in case someone deleted or changed it
	retryAt   time.Time
	backoff   time.Duration
	unhealthy map[string]bool // under work only
	healthAt  time.Time       // when to look at the devices' health again; under work only
}

// classEvery is how often an applied DeviceClass is applied again: one
// deleted by hand (or by an uninstall) comes back.
const classEvery = 5 * time.Minute

// apiTimeout bounds each API call of the manager's own.
const apiTimeout = 10 * time.Second

// healthEvery is how often health is looked at again for a resource
// without a healthCheck interval (its cdiDevices may come and go).
const healthEvery = 5 * time.Second

// New returns a manager; Run starts it.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	metrics, err := newMetrics(cfg.Registerer)
	if err != nil {
		// Only a registry shared by two managers gets here.
		cfg.Logger.Error("DRA metrics not served", "err", err)
	}
	return &Manager{cfg: cfg, log: cfg.Logger, metrics: metrics, kick: make(chan struct{}, 1), drivers: map[string]*entry{}}
}

// Run retries what failed, follows health, and stops every driver (deleting
// its slices) when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	m.mu.Unlock()
	m.poke()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			m.stopAll()
			return nil
		case <-m.kick:
		case <-tick.C:
		}
		m.reconcile(ctx)
	}
}

func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Apply makes the drivers match the api: dra resources among served.
// Drivers that go are stopped, their slices deleted, before it returns, so
// a resource moving to the device-plugin API is never served by both.
// driverInUse tells a driver some api: dra resource of the manifest still
// has (served here or on other nodes) from one none has, whose
// DeviceClass goes.
func (m *Manager) Apply(served []*manifest.Resource, driverInUse func(driver string) bool) {
	m.work.Lock()
	defer m.work.Unlock()
	want := map[string]*manifest.Resource{}
	for _, r := range served {
		if r.DRA() {
			want[r.Name] = r
		}
	}
	m.mu.Lock()
	var stop []*entry
	for name, e := range m.drivers {
		r, ok := want[name]
		if !ok || r.Driver() != e.res.Driver() {
			stop = append(stop, e)
			delete(m.drivers, name)
		}
	}
	ctx := m.ctx
	m.mu.Unlock()
	for _, e := range stop {
		m.stopEntry(e)
		if !driverInUse(e.res.Driver()) {
			m.deleteClass(ctx, e.res)
		}
	}
	for name, r := range want {
		m.mu.Lock()
		e, ok := m.drivers[name]
		if !ok {
			m.drivers[name] = &entry{res: r}
		} else if !e.res.SameSpec(r) {
			e.res, e.classDone, e.retryAt = r, false, time.Time{}
		} else {
			e = nil // unchanged
		}
		drv := (*driver)(nil)
		if e != nil {
			drv = e.drv
		}
		m.mu.Unlock()
		if drv != nil {
			e.unhealthy = m.health(r)
			if err := drv.update(ctx, r, e.unhealthy); err != nil {
				m.log.Error("cannot publish the reloaded resource", "resource", name, "err", err)
			}
		}
	}
	m.poke()
}

// reconcile starts drivers that are not running and applies classes not
// yet applied, each no sooner than its backoff allows, and republishes
// resources whose health changed.
func (m *Manager) reconcile(ctx context.Context) {
	m.work.Lock()
	defer m.work.Unlock()
	m.mu.Lock()
	dead := m.dead
	m.dead = nil
	entries := make([]*entry, 0, len(m.drivers))
	for _, e := range m.drivers {
		entries = append(entries, e)
	}
	m.mu.Unlock()
	for _, s := range dead {
		s.drv.halt()
		s.cancel()
	}
	now := time.Now()
	for _, e := range entries {
		m.mu.Lock()
		if e.classDone && !now.Before(e.classAt) {
			e.classDone = false
		}
		drv, res, classDone, retryAt := e.drv, e.res, e.classDone, e.retryAt
		m.mu.Unlock()
		if drv != nil && !now.Before(e.healthAt) {
			_, every := res.HealthCheck()
			if every <= 0 {
				every = healthEvery
			}
			e.healthAt = now.Add(every)
			if h := m.health(res); !maps.Equal(h, e.unhealthy) {
				e.unhealthy = h
				if err := drv.update(ctx, res, h); err != nil {
					m.log.Error("cannot publish the health of the devices", "resource", res.Name, "err", err)
				}
			}
		}
		if (drv != nil && classDone) || now.Before(retryAt) {
			continue
		}
		err := m.startEntry(ctx, e)
		if err == nil && !classDone {
			err = m.applyClass(ctx, res)
			m.mu.Lock()
			e.classDone, e.classAt = err == nil, now.Add(classEvery)
			m.mu.Unlock()
		}
		m.mu.Lock()
		if err != nil {
			e.backoff = min(max(2*e.backoff, m.cfg.Retry), time.Minute)
			e.retryAt = now.Add(e.backoff)
		} else {
			e.backoff = 0
		}
		backoff := e.backoff
		m.mu.Unlock()
		if err != nil {
			m.log.Error("DRA resource not fully served yet; retrying", "resource", res.Name, "in", backoff, "err", err)
		}
	}
}

// startEntry starts e's driver if it is not running. m.work is held.
func (m *Manager) startEntry(ctx context.Context, e *entry) error {
	m.mu.Lock()
	running := e.drv != nil
	m.mu.Unlock()
	if running {
		return nil
	}
	return m.startDriver(ctx, e)
}

func (m *Manager) startDriver(ctx context.Context, e *entry) error {
	if m.cfg.Node == "" {
		return errors.New("no node name: set --node-name, or NODE_NAME from the downward API (spec.nodeName)")
	}
	if m.cfg.CDI == nil {
		return errors.New("no CDI spec dir, where prepared claims go: set --cdi-spec-dir (the runtime's /var/run/cdi)")
	}
	client, err := m.apiClient()
	if err != nil {
		return err
	}
	dctx, cancel := context.WithCancel(ctx)
	d := &driver{
		name: e.res.Driver(), resource: e.res.Name, node: m.cfg.Node,
		dir: pluginDir(m.cfg.PluginDir, e.res.Driver()), cdi: m.cfg.CDI, client: client,
		log: m.log.With("resource", e.res.Name, "driver", e.res.Driver()), metrics: m.metrics,
		res: e.res, unhealthy: m.health(e.res),
	}
	var failedEarly error // a fatal error before start returned; under m.mu
	d.fail = func(err error) {
		// From the helper's goroutines, which its Stop waits for: the
		// next reconcile stops it and starts another, backing off.
		m.mu.Lock()
		defer m.mu.Unlock()
		switch {
		case e.drv == d:
			e.backoff = min(max(2*e.backoff, m.cfg.Retry), time.Minute)
			e.drv, e.retryAt = nil, time.Now().Add(e.backoff)
			m.dead = append(m.dead, stopped{d, cancel})
			m.poke()
		case e.drv == nil && failedEarly == nil:
			failedEarly = err
		}
	}
	err = d.start(dctx, m.cfg.RegistryDir)
	m.mu.Lock()
	if err == nil && failedEarly != nil {
		err = failedEarly
	}
	if err == nil {
		e.drv, e.cancel = d, cancel
	}
	m.mu.Unlock()
	if err != nil {
		if d.helper != nil {
			d.halt()
		}
		cancel()
		return err
	}
	e.unhealthy = d.unhealthy
	d.log.Info("DRA driver started", "devices", len(e.res.IDs), "registry", m.cfg.RegistryDir)
	return nil
}

// stopEntry stops a driver that is no longer wanted and deletes its slices.
func (m *Manager) stopEntry(e *entry) {
	m.mu.Lock()
	drv, stopDriver := e.drv, e.cancel
	e.drv = nil
	// A driver of e that failed is stopped here too, so its slices go.
	var failed []stopped
	m.dead = slices.DeleteFunc(m.dead, func(s stopped) bool {
		if s.drv.name == e.res.Driver() {
			failed = append(failed, s)
			return true
		}
		return false
	})
	m.mu.Unlock()
	for _, s := range failed {
		s.drv.halt()
		s.cancel()
	}
	if drv != nil {
		drv.halt()
		defer stopDriver()
	}
	defer m.metrics.forget(e.res.Name)
	if m.client == nil || m.cfg.Node == "" {
		return // never dialled: nothing was published
	}
	// The manager's context may be done: deleting the slices gets its own.
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	if err := deleteSlices(ctx, m.client, m.cfg.Node, e.res.Driver()); err != nil {
		m.log.Error("DRA driver stopped, but its slices may remain", "resource", e.res.Name, "err", err)
		return
	}
	m.log.Info("DRA driver stopped, its slices deleted", "resource", e.res.Name, "driver", e.res.Driver())
}

func (m *Manager) stopAll() {
	m.work.Lock()
	defer m.work.Unlock()
	m.mu.Lock()
	dead := m.dead
	m.dead = nil
	var all []*entry
	for name, e := range m.drivers {
		all = append(all, e)
		delete(m.drivers, name)
	}
	m.mu.Unlock()
	for _, s := range dead {
		s.drv.halt()
		s.cancel()
	}
	var wg sync.WaitGroup
	for _, e := range all {
		wg.Go(func() { m.stopEntry(e) })
	}
	wg.Wait()
}

// apiClient returns the API client, dialling it the first time. m.work is held.
func (m *Manager) apiClient() (kubernetes.Interface, error) {
	if m.client != nil {
		return m.client, nil
	}
	if m.cfg.Client == nil {
		return nil, errors.New("no API client configured")
	}
	c, err := m.cfg.Client()
	if err != nil {
		return nil, err
	}
	m.client = c
	return c, nil
}

// applyClass applies the resource's DeviceClass server-side, unless a
// class of that name is someone else's.
func (m *Manager) applyClass(ctx context.Context, r *manifest.Resource) error {
	client, err := m.apiClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	classes := client.ResourceV1().DeviceClasses()
	cur, err := classes.Get(ctx, r.Driver(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		m.metrics.classApplies.WithLabelValues(r.Name, "error").Inc()
		return fmt.Errorf("read DeviceClass %s: %w", r.Driver(), err)
	case !managedByUs(cur.ManagedFields):
		m.metrics.classApplies.WithLabelValues(r.Name, "not_ours").Inc()
		return fmt.Errorf("DeviceClass %s exists and is not ours (managed by %s): not overwriting it; delete it, or set dra.driver to another name", r.Driver(), managers(cur.ManagedFields))
	}
	c := DeviceClass(r)
	sel := resourceapply.DeviceSelector().WithCEL(resourceapply.CELDeviceSelector().WithExpression(c.Spec.Selectors[0].CEL.Expression))
	apply := resourceapply.DeviceClass(c.Name).WithLabels(c.Labels).
		WithSpec(resourceapply.DeviceClassSpec().WithSelectors(sel).WithExtendedResourceName(*c.Spec.ExtendedResourceName))
	if _, err := classes.Apply(ctx, apply, metav1.ApplyOptions{FieldManager: FieldManager}); err != nil {
		result := "error"
		if apierrors.IsConflict(err) {
			result = "conflict"
		}
		m.metrics.classApplies.WithLabelValues(r.Name, result).Inc()
		return fmt.Errorf("apply DeviceClass %s: %w", r.Driver(), err)
	}
	m.metrics.classApplies.WithLabelValues(r.Name, "ok").Inc()
	m.log.Info("DeviceClass applied", "resource", r.Name, "class", c.Name, "extendedResourceName", r.Name)
	return nil
}

// deleteClass deletes the DeviceClass of a resource that left the
// manifest, if it is ours.
func (m *Manager) deleteClass(ctx context.Context, r *manifest.Resource) {
	if ctx == nil || ctx.Err() != nil {
		return
	}
	client := m.client
	if client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	classes := client.ResourceV1().DeviceClasses()
	cur, err := classes.Get(ctx, r.Driver(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return
	case err != nil:
		m.log.Warn("cannot read the DeviceClass of a removed resource; it stays", "class", r.Driver(), "err", err)
		return
	case !slices.Equal(managers(cur.ManagedFields), []string{FieldManager}):
		// Someone else applied or edited it too: theirs as well.
		m.log.Info("DeviceClass of a removed resource left: not only ours", "class", r.Driver(), "managers", managers(cur.ManagedFields))
		return
	}
	if err := classes.Delete(ctx, r.Driver(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}}); err != nil && !apierrors.IsNotFound(err) {
		m.log.Warn("cannot delete the DeviceClass of a removed resource", "class", r.Driver(), "err", err)
		return
	}
	m.log.Info("DeviceClass of a removed resource deleted", "class", r.Driver())
}

func managedByUs(fields []metav1.ManagedFieldsEntry) bool {
	return slices.ContainsFunc(fields, func(f metav1.ManagedFieldsEntry) bool { return f.Manager == FieldManager })
}

func managers(fields []metav1.ManagedFieldsEntry) []string {
	var out []string
	for _, f := range fields {
		if !slices.Contains(out, f.Manager) {
			out = append(out, f.Manager)
		}
	}
	return out
}

// health is the set of unhealthy devices of r.
func (m *Manager) health(r *manifest.Resource) map[string]bool {
	return Unhealthy(r, m.cfg.Node, m.cfg.Resolves)
}

// Unhealthy is the set of unhealthy devices of r: listed unhealthy,
// failing their healthCheck path, or with a cdiDevices name that does not
// resolve (resolves nil: every name does).
func Unhealthy(r *manifest.Resource, node string, resolves func(name string) bool) map[string]bool {
	out := map[string]bool{}
	paths, _ := r.HealthCheck()
	for i, id := range r.IDs {
		switch {
		case r.StaticUnhealthy(id):
			out[id] = true
		case paths != nil:
			if _, err := os.Stat(paths[i]); err != nil {
				out[id] = true
			}
		}
		if resolves == nil || out[id] {
			continue
		}
		names, err := r.ExternalCDINames(i, node)
		if err != nil {
			out[id] = true
			continue
		}
		for _, n := range names {
			if !resolves(n) {
				out[id] = true
				break
			}
		}
	}
	return out
}

// Waiting names the resources whose driver is not registered with the
// kubelet (or not running), sorted.
func (m *Manager) Waiting() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, e := range m.drivers {
		if e.drv == nil || !e.drv.registered.Load() {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
