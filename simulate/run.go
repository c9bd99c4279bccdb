// Package simulate plays the kubelet's part against the real host over the
// real device plugin gRPC API, so a manifest can be tried without a cluster:
// a stand-in kubelet registers every plugin, follows its device list, and
// asks it for preferred allocations and allocations as the kubelet would.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/cdi"
	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/manifest"
)

// Options of one simulation.
type Options struct {
	Manifest *manifest.Manifest
	// Request is devices per resource per container; nil means one device
	// of every resource served on the node that has a healthy device.
	Request map[string]int
	// Containers asking for Request each (default 1).
	Containers int
	NodeName   string
	Logger     *slog.Logger
	// CDIRegistryDirs are this machine's CDI spec dirs: a device whose CDI
	// names resolve in none of them is Unhealthy, as on a node. Generated
	// specs go to a temporary dir, read too. nil checks nothing.
	CDIRegistryDirs []string
	// HostRoot is where discover: resources look for /dev and /sys
	// (default "/": this machine).
	HostRoot string
	// Timeout bounds the whole simulation (default 30 s).
	Timeout time.Duration
}

// RequestError is a request the manifest cannot satisfy: a resource it
// lacks or does not serve on the node, or more devices than it has. The
// command line reports it as a failure (exit 1), not as a usage error.
type RequestError struct{ msg string }

func (e *RequestError) Error() string { return e.msg }

func requestErrorf(format string, args ...any) error {
	return &RequestError{msg: fmt.Sprintf(format, args...)}
}

// ParseRequest parses "example.com/fpga=2,acme.io/seat=1".
func ParseRequest(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, count, ok := strings.Cut(part, "=")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("request %q: write <resource>=<count>, for example example.com/fpga=2", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("request %q: the count must be a whole number of at least 1", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("request names %s twice", name)
		}
		out[name] = n
	}
	if len(out) == 0 {
		return nil, errors.New("the request is empty; write <resource>=<count>[,...]")
	}
	return out, nil
}

// ErrNoEndpoint is returned for a resource that has not registered.
var ErrNoEndpoint = errors.New("resource not registered")

// healthWait bounds the wait for the first health probe to reach the
// simulated kubelet; the host probes at start, so it is normally at once.
const healthWait = 2 * time.Second

// Run starts the real host on a temporary device-plugin dir, registers
// every plugin with a stand-in kubelet, allocates the request for each
// container as the kubelet would, and reports what the containers get.
// A request the manifest cannot satisfy is a *RequestError.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Containers <= 0 {
		opts.Containers = 1
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := opts.Manifest
	served, skipped := m.ForNode(opts.NodeName)
	// Check what the manifest alone can tell before starting anything.
	if err := checkRequest(opts.Request, opts.Containers, m, served, opts.NodeName); err != nil {
		return nil, err
	}

	dir, err := socketDir()
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	kubelet, err := kubeletsim.Start(dir, kubeletsim.Config{})
	if err != nil {
		return nil, err
	}
	defer kubelet.Stop()

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	specDir := filepath.Join(dir, "cdi") // removed with dir
	if err := os.Mkdir(specDir, 0o755); err != nil {
		return nil, fmt.Errorf("temporary CDI spec dir: %w", err)
	}
	hostCtx, stopHost := context.WithCancel(ctx)
	registry := opts.CDIRegistryDirs
	if registry != nil {
		registry = append(slices.Clone(registry), specDir)
	}
	h := host.New(host.Config{DevicePluginDir: dir, NodeName: opts.NodeName, Logger: opts.Logger, CDISpecDir: specDir, CDIRegistryDirs: registry, HostRoot: opts.HostRoot})
	hostRun := inBackground(func() error { return h.Run(hostCtx, m) })
	defer func() {
		stopHost()
		<-hostRun.done
	}()

	served, viaDRA := manifest.ByAPI(served)
	names := make([]string, len(served))
	for i, r := range served {
		names[i] = r.Name
	}
	if err := waitRegistered(ctx, kubelet, names, hostRun); err != nil {
		return nil, err
	}
	waitHealth(ctx, kubelet, served)

	report := &Report{Manifest: m.Hash, Node: opts.NodeName, DevicePluginDir: dir, Containers: []ContainerReport{}}
	for _, r := range skipped {
		report.Skipped = append(report.Skipped, SkippedResource{Name: r.Name, Nodes: r.Spec.Nodes})
	}
	for _, r := range served {
		ep := kubelet.Endpoint(r.Name)
		if ep == nil {
			return nil, fmt.Errorf("%s: %w", r.Name, ErrNoEndpoint)
		}
		rr := ResourceReport{Name: r.Name, Socket: ep.Socket, PreferredAllocation: ep.Options.GetPreferredAllocationAvailable, PreStartRequired: ep.Options.PreStartRequired, Devices: []DeviceReport{},
			CDIKind: r.CDIKind(), UnresolvedCDI: h.UnresolvedCDI(r.Name)}
		for _, d := range kubelet.Devices(r.Name) {
			dr := DeviceReport{ID: d.ID, Health: d.Health}
			if d.Topology != nil && len(d.Topology.Nodes) > 0 {
				n := int(d.Topology.Nodes[0].ID)
				dr.NUMANode = &n
			}
			rr.Devices = append(rr.Devices, dr)
		}
		report.Resources = append(report.Resources, rr)
	}

	resolves, closeRegistry, err := cdi.OpenResolver(registry)
	if err != nil {
		return nil, err
	}
	defer func() { _ = closeRegistry() }()
	if report.DRA, err = draResources(viaDRA, draNode(opts.NodeName), resolves); err != nil {
		return nil, err
	}

	request := opts.Request
	if request == nil {
		request, report.NotRequested = defaultRequest(report.Resources, report.DRA)
		report.DefaultRequest = true
	}
	report.Request = request
	viaPlugin := maps.Clone(request)
	for _, r := range viaDRA {
		delete(viaPlugin, r.Name)
	}

	used := map[string]map[string]bool{} // resource -> device IDs given to earlier containers
	for c := 0; c < opts.Containers && len(request) > 0; c++ {
		cr, err := allocateContainer(ctx, kubelet, m, fmt.Sprintf("container-%d", c), viaPlugin, used)
		if err != nil {
			return nil, err
		}
		if err := claimContainer(&cr, m, report.DRA, request, draNode(opts.NodeName), used); err != nil {
			return nil, err
		}
		report.Containers = append(report.Containers, cr)
	}
	return report, nil
}

// socketDir makes the temporary device-plugin dir. Unix socket paths are
// limited to 108 bytes, so a long $TMPDIR (macOS has one) gives way to /tmp.
func socketDir() (string, error) {
	parent := ""
	if len(os.TempDir()) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "sdp-sim-")
	if err != nil {
		return "", fmt.Errorf("temporary device-plugin dir: %w", err)
	}
	return dir, nil
}

// background is a function running in a goroutine of its own. Its end is
// a closed channel, not a value sent, so that any number of waiters see it:
// Run waits for the host both while it registers and when it cleans up.
type background struct {
	done chan struct{} // closed when the function returned
	err  error         // its result, once done is closed
}

func inBackground(f func() error) *background {
	b := &background{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.err = f()
	}()
	return b
}

// waitRegistered waits for the kubelet to see every resource, or for the
// host to stop.
func waitRegistered(ctx context.Context, k *kubeletsim.Kubelet, names []string, hostRun *background) error {
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait := inBackground(func() error { return k.WaitRegistered(waitCtx, names) })
	select {
	case <-wait.done:
		return wait.err
	case <-hostRun.done:
		cancel()
		<-wait.done
		err := hostRun.err
		if err == nil {
			err = errors.New("the host stopped")
		}
		return fmt.Errorf("host: %w", err)
	}
}

// waitHealth waits, briefly, until the health the kubelet sees for each
// resource with a healthCheck matches its paths on this machine: the host
// probes at start, but its first device list may go out before the probe.
// If a path changes meanwhile the wait ends at healthWait and the report
// shows what the kubelet saw last.
func waitHealth(ctx context.Context, k *kubeletsim.Kubelet, served []*manifest.Resource) {
	want := map[string][]string{} // resource -> expected health by device index
	for _, r := range served {
		paths, _ := r.HealthCheck()
		if paths == nil {
			continue
		}
		health := make([]string, len(r.IDs))
		for i, id := range r.IDs {
			health[i] = pluginapi.Healthy
			if _, err := os.Stat(paths[i]); err != nil || r.StaticUnhealthy(id) {
				health[i] = pluginapi.Unhealthy
			}
		}
		want[r.Name] = health
	}
	if len(want) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, healthWait)
	defer cancel()
	_ = k.WaitFor(ctx, func(record func(string) kubeletsim.Record) bool {
		for name, health := range want {
			devices := record(name).Devices
			if len(devices) != len(health) {
				return false
			}
			for i, d := range devices {
				if d.Health != health[i] {
					return false
				}
			}
		}
		return true
	})
}

// checkRequest checks an explicit request against the manifest: every
// resource exists and is served on the node, and the manifest declares
// enough devices for every container (a discover: resource declares none:
// its devices are known once the host has looked, and allocation says
// when they are too few).
func checkRequest(req map[string]int, containers int, m *manifest.Manifest, served []*manifest.Resource, node string) error {
	for _, name := range slices.Sorted(maps.Keys(req)) {
		r := m.Resource(name)
		switch {
		case r == nil:
			known := make([]string, len(m.Resources))
			for i, r := range m.Resources {
				known[i] = r.Name
			}
			return requestErrorf("the manifest has no resource %s; it has %s", name, strings.Join(known, ", "))
		case !slices.Contains(served, r):
			return requestErrorf("%s is not served on node %q: none of its nodes: globs (%s) matches; set --node-name to a node it serves",
				name, node, strings.Join(r.Spec.Nodes, ", "))
		}
		if total := req[name] * containers; !r.Discovers() && total > len(r.IDs) {
			per := ""
			if containers > 1 {
				per = fmt.Sprintf(" (%d containers × %d)", containers, req[name])
			}
			return requestErrorf("%s: the request needs %d devices%s but the manifest declares only %d; the kubelet would refuse the pod",
				name, total, per, len(r.IDs))
		}
	}
	return nil
}

// defaultRequest is one device of every resource that has a healthy one;
// the others are named, since the kubelet would refuse a pod asking them.
func defaultRequest(resources []ResourceReport, viaDRA []DRAReport) (request map[string]int, notRequested []string) {
	request = map[string]int{}
	add := func(name string, devices []DeviceReport) {
		if slices.ContainsFunc(devices, func(d DeviceReport) bool { return d.Health == pluginapi.Healthy }) {
			request[name] = 1
		} else {
			notRequested = append(notRequested, name)
		}
	}
	for _, r := range resources {
		add(r.Name, r.Devices)
	}
	for _, r := range viaDRA {
		add(r.Name, r.Devices)
	}
	slices.Sort(notRequested)
	return request, notRequested
}

// draNode is the node the DRA objects are for: without a node name, a
// stand-in, as a slice must name its node.
func draNode(node string) string {
	if node == "" {
		return "simulated-node"
	}
	return node
}

// allocateContainer does for one container what the kubelet's device
// manager does at admission: per resource, out of the healthy devices not
// given to an earlier container, ask the plugin for a preferred allocation,
// allocate, and call PreStartContainer when the plugin asks for it; then
// merge the responses as the kubelet does.
func allocateContainer(ctx context.Context, k *kubeletsim.Kubelet, m *manifest.Manifest, name string, request map[string]int, used map[string]map[string]bool) (ContainerReport, error) {
	cr := ContainerReport{Name: name, Devices: map[string][]string{}}
	var responses []resourceResponse
	for _, res := range slices.Sorted(maps.Keys(request)) {
		n := request[res]
		ep := k.Endpoint(res)
		if ep == nil {
			return cr, fmt.Errorf("%s: %w", res, ErrNoEndpoint)
		}
		if used[res] == nil {
			used[res] = map[string]bool{}
		}
		devices := k.Devices(res) // one list for the choice and the message
		var available []string
		healthy := 0
		for _, d := range devices {
			if d.Health != pluginapi.Healthy {
				continue
			}
			healthy++
			if !used[res][d.ID] {
				available = append(available, d.ID)
			}
		}
		if n > len(available) {
			why := fmt.Sprintf("%d of its %d devices are healthy", healthy, len(devices))
			if len(used[res]) > 0 {
				why += fmt.Sprintf(" and %d went to earlier containers", len(used[res]))
			}
			// The kubelet's own words, so the message can be matched to a pod event.
			return cr, requestErrorf("%s: %s: requested number of devices unavailable for %s. Requested: %d, Available: %d (%s)",
				name, res, res, n, len(available), why)
		}
		ids := available[:n]
		if ep.Options.GetPreferredAllocationAvailable {
			pref, err := ep.Client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
				ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: available, AllocationSize: int32(n)}},
			})
			if err != nil {
				return cr, fmt.Errorf("%s: GetPreferredAllocation for %s: %w", name, res, err)
			}
			if got := pref.ContainerResponses[0].DeviceIDs; validChoice(got, available, n) {
				ids = got
			} else {
				cr.Warnings = append(cr.Warnings, fmt.Sprintf("%s: preferred allocation (%s) is not %d of the available devices; the kubelet would ignore it", res, manifest.ListIDs(got, " "), n))
			}
		}
		resp, err := ep.Client.Allocate(ctx, &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}},
		})
		if err != nil {
			return cr, fmt.Errorf("%s: Allocate %s (%s): %w", name, res, manifest.ListIDs(ids, " "), err)
		}
		if len(resp.ContainerResponses) != 1 {
			return cr, fmt.Errorf("%s: Allocate %s: %d container responses for 1 container request", name, res, len(resp.ContainerResponses))
		}
		if ep.Options.PreStartRequired {
			if _, err := ep.Client.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: ids}); err != nil {
				return cr, fmt.Errorf("%s: PreStartContainer %s (%s): %w", name, res, manifest.ListIDs(ids, " "), err)
			}
		}
		for _, id := range ids {
			used[res][id] = true
		}
		cr.Devices[res] = inManifestOrder(m.Resource(res), ids)
		responses = append(responses, resourceResponse{res, resp.ContainerResponses[0]})
	}
	merge(&cr, responses)
	return cr, nil
}

// inManifestOrder sorts IDs as the plugin renders .IDs: in manifest order.
func inManifestOrder(r *manifest.Resource, ids []string) []string {
	sorted := slices.Clone(ids)
	if r != nil {
		slices.SortFunc(sorted, func(a, b string) int { return r.Position(a) - r.Position(b) })
	}
	return sorted
}

func validChoice(got, available []string, n int) bool {
	if len(got) != n {
		return false
	}
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] || !slices.Contains(available, id) {
			return false
		}
		seen[id] = true
	}
	return true
}
