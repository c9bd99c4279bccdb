package simulate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
	"simple-device-plugin/manifest"
)

// Options of one simulation.
type Options struct {
	Manifest *manifest.Manifest
	// Request is devices per resource per container; nil means one device
	// of every resource served on the node.
	Request map[string]int
	// Containers asking for Request each (default 1).
	Containers int
	NodeName   string
	Logger     *slog.Logger
	// Timeout bounds the whole simulation (default 30 s).
	Timeout time.Duration
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
		if !ok {
			return nil, fmt.Errorf("request %q: write <resource>=<count>, for example example.com/fpga=2", part)
		}
		n, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("request %q: the count must be a whole number of at least 1", part)
		}
		name = strings.TrimSpace(name)
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

// Run starts the real host on a temporary device-plugin dir, registers
// every plugin with a stand-in kubelet, allocates the request for each
// container as the kubelet would, and reports what the containers get.
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
	request, err := resolveRequest(opts.Request, m, served, opts.NodeName)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp("", "sdp-sim-")
	if err != nil {
		return nil, fmt.Errorf("temporary device-plugin dir: %w", err)
	}
	defer os.RemoveAll(dir)

	kubelet, err := StartKubelet(dir)
	if err != nil {
		return nil, err
	}
	defer kubelet.Stop()

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	hostCtx, stopHost := context.WithCancel(ctx)
	h := host.New(host.Config{DevicePluginDir: dir, NodeName: opts.NodeName, Logger: opts.Logger})
	hostDone := make(chan error, 1)
	go func() { hostDone <- h.Run(hostCtx, m) }()
	defer func() {
		stopHost()
		<-hostDone
	}()

	names := make([]string, len(served))
	for i, r := range served {
		names[i] = r.Name
	}
	if err := waitRegistered(ctx, kubelet, names, hostDone); err != nil {
		return nil, err
	}

	report := &Report{Manifest: m.Hash, Node: opts.NodeName, DevicePluginDir: dir}
	for _, r := range skipped {
		report.Skipped = append(report.Skipped, r.Name)
	}
	for _, r := range served {
		ep := kubelet.Endpoint(r.Name)
		rr := ResourceReport{Name: r.Name, Socket: ep.Socket, PreferredAllocation: ep.Options.GetPreferredAllocationAvailable, PreStartRequired: ep.Options.PreStartRequired}
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

	used := map[string]map[string]bool{} // resource -> device IDs given to earlier containers
	for c := 0; c < opts.Containers; c++ {
		cr, err := allocateContainer(ctx, kubelet, fmt.Sprintf("container-%d", c), request, used)
		if err != nil {
			return nil, err
		}
		report.Containers = append(report.Containers, cr)
	}
	return report, nil
}

// waitRegistered waits for the kubelet to see every resource, or for the
// host to fail.
func waitRegistered(ctx context.Context, k *Kubelet, names []string, hostDone <-chan error) error {
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- k.WaitRegistered(waitCtx, names) }()
	select {
	case err := <-errc:
		return err
	case err := <-hostDone:
		cancel()
		<-errc
		if err == nil {
			err = errors.New("the host stopped")
		}
		return fmt.Errorf("host: %w", err)
	}
}

// resolveRequest checks the request against the manifest.
func resolveRequest(req map[string]int, m *manifest.Manifest, served []*manifest.Resource, node string) (map[string]int, error) {
	if req == nil {
		req = map[string]int{}
		for _, r := range served {
			req[r.Name] = 1
		}
		return req, nil
	}
	for _, name := range sortedKeys(req) {
		r := m.Resource(name)
		switch {
		case r == nil:
			known := make([]string, len(m.Resources))
			for i, r := range m.Resources {
				known[i] = r.Name
			}
			return nil, fmt.Errorf("the manifest has no resource %s; it has %s", name, strings.Join(known, ", "))
		case !slices.Contains(served, r):
			return nil, fmt.Errorf("%s is not served on node %q (its nodes: %s)", name, node, strings.Join(r.Spec.Nodes, ", "))
		}
	}
	return req, nil
}

// allocateContainer asks each plugin for a preferred allocation out of the
// devices still available, then allocates it, like the kubelet's admission
// of one container; and merges the responses as the kubelet does.
func allocateContainer(ctx context.Context, k *Kubelet, name string, request map[string]int, used map[string]map[string]bool) (ContainerReport, error) {
	cr := ContainerReport{Name: name, Devices: map[string][]string{}}
	var responses []resourceResponse
	for _, res := range sortedKeys(request) {
		n := request[res]
		ep := k.Endpoint(res)
		if ep == nil {
			return cr, fmt.Errorf("%s: %w", res, ErrNoEndpoint)
		}
		if used[res] == nil {
			used[res] = map[string]bool{}
		}
		var available []string
		for _, d := range k.Devices(res) {
			if d.Health == pluginapi.Healthy && !used[res][d.ID] {
				available = append(available, d.ID)
			}
		}
		if n > len(available) {
			return cr, fmt.Errorf("%s: %s asks for %d devices but only %d are available (healthy and not given to an earlier container); the kubelet would refuse it", name, res, n, len(available))
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
				cr.Warnings = append(cr.Warnings, fmt.Sprintf("%s: preferred allocation %v is not %d of the available devices; the kubelet would ignore it", res, got, n))
			}
		}
		resp, err := ep.Client.Allocate(ctx, &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}},
		})
		if err != nil {
			return cr, fmt.Errorf("%s: Allocate %s %v: %w", name, res, ids, err)
		}
		for _, id := range ids {
			used[res][id] = true
		}
		sorted := slices.Clone(ids)
		sort.Strings(sorted)
		cr.Devices[res] = sorted
		responses = append(responses, resourceResponse{res, resp.ContainerResponses[0]})
	}
	merge(&cr, responses)
	return cr, nil
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
