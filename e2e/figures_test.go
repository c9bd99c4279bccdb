package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Figures, not assertions: these tests print measurements (go test -v) and
// fail only when something does not work. Run them without -race for
// numbers worth quoting (the host is built with -race when the tests are):
//
//	cd e2e && go test -count=1 -run Figure -v ./...

// bigManifest has three 1,000-device resources on two virtual NUMA nodes,
// one per allocation policy, with templates in every kind of output a
// container gets, so Allocate does its usual rendering.
const bigManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/big-packed
    count: 1000
    topology: {numaNodes: 2}
    allocationPolicy: packed
    env: {BIG_IDS: '{{ join .IDs "," }}', BIG_COUNT: "{{ .Count }}"}
    annotations: {e2e.example.com/big: '{{ join .IDs "," }}'}
    mounts: [{hostPath: "/srv/big/{{ .ID }}", containerPath: "/big/{{ .ID }}", perDevice: true}]
    cdiDevices: [{name: "e2e.example.com/big={{ .ID }}", perDevice: true}]
  - name: e2e.example.com/big-spread
    count: 1000
    topology: {numaNodes: 2}
    allocationPolicy: spread
    env: {SPREAD_IDS: '{{ join .IDs "," }}'}
  - name: e2e.example.com/big-first
    count: 1000
    topology: {numaNodes: 2}
    allocationPolicy: first
    env: {FIRST_IDS: '{{ join .IDs "," }}'}
`

// GetPreferredAllocation for a 1,000-device resource and a request of 8,
// against Allocate of 8 devices: same host process, same socket, calls
// interleaved round by round (the order alternating), each call as the
// kubelet makes it (all 1,000 IDs available, in no particular order, as the
// kubelet's set gives them).
func TestFigurePreferredAllocationVsAllocate(t *testing.T) {
	k := startKubelet(t)
	startHost(t, writeManifest(t, bigManifest), "--registration", "kubelet-socket")
	k.registeredAll(t, map[string]int64{"e2e.example.com/big-packed": 1000, "e2e.example.com/big-spread": 1000, "e2e.example.com/big-first": 1000})

	const rounds, warmup, size = 400, 40, 8
	for _, policy := range []string{"packed", "spread", "first"} {
		res := "e2e.example.com/big-" + policy
		conn, err := grpc.NewClient("unix://"+socketPath(res), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("dial %s: %v", res, err)
		}
		client := pluginapi.NewDevicePluginClient(conn)
		available := make([]string, 1000)
		for i := range available {
			available[i] = fmt.Sprintf("big-%s-%d", policy, i)
		}
		ctx := context.Background()
		var pref, alloc, ratios []time.Duration
		for r := range rounds + warmup {
			rand.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
			var ids []string
			preferred := func() time.Duration {
				start := time.Now()
				resp, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
					ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: available, AllocationSize: size}},
				})
				took := time.Since(start)
				if err != nil || len(resp.ContainerResponses) != 1 || len(resp.ContainerResponses[0].DeviceIDs) != size {
					t.Fatalf("GetPreferredAllocation %s: %v %v", res, resp, err)
				}
				ids = resp.ContainerResponses[0].DeviceIDs
				return took
			}
			allocate := func() time.Duration {
				devs := ids
				if devs == nil {
					devs = available[:size]
				}
				start := time.Now()
				resp, err := client.Allocate(ctx, &pluginapi.AllocateRequest{
					ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: devs}},
				})
				took := time.Since(start)
				if err != nil || len(resp.ContainerResponses) != 1 {
					t.Fatalf("Allocate %s: %v %v", res, resp, err)
				}
				return took
			}
			var p, a time.Duration
			if r%2 == 0 {
				p, a = preferred(), allocate()
			} else {
				a, p = allocate(), preferred()
			}
			if r < warmup {
				continue
			}
			pref, alloc = append(pref, p), append(alloc, a)
			ratios = append(ratios, time.Duration(float64(p)/float64(a)*1000)) // per mille
		}
		conn.Close()
		pp, ap := median(pref), median(alloc)
		t.Logf("%-6s GetPreferredAllocation(1000 available, 8): p50 %v, p90 %v | Allocate(8): p50 %v, p90 %v | ratio of p50s %.2f, median per-round ratio %.2f (%d rounds%s)",
			policy, pp.Round(time.Microsecond), percentile(pref, 90).Round(time.Microsecond),
			ap.Round(time.Microsecond), percentile(alloc, 90).Round(time.Microsecond),
			float64(pp)/float64(ap), float64(median(ratios))/1000, rounds, raceNote())
	}
}

// Kubelet restart recovery, median of 20 in each registration mode, with
// the kubelet's real device manager (and, for plugins-registry, its plugin
// manager). A restart stops the kubelet's managers and starts new ones;
// "recovered" is from the new managers' start until the kubelet's
// allocatable is back to full for every resource.
func TestFigureKubeletRestartRecovery(t *testing.T) {
	const restarts = 20
	counts := manifestCounts(t, []byte(threeResources))
	report := map[string][]time.Duration{}
	measure := func(t *testing.T, mode string, restart func(), capacity condition) {
		for i := 1; i <= restarts; i++ {
			restart()
			d := eventually(t, registerTimeout, fmt.Sprintf("every resource back after kubelet restart %d (%s)", i, mode), capacity)
			report[mode] = append(report[mode], d)
		}
	}
	t.Run("kubelet-socket", func(t *testing.T) {
		k := startKubelet(t)
		startHost(t, writeManifest(t, threeResources), "--registration", "kubelet-socket")
		k.registeredAll(t, counts)
		measure(t, "kubelet-socket", k.restart, k.capacityIs(allHealthy(counts)))
	})
	t.Run("plugins-registry", func(t *testing.T) {
		k := startRegistryKubelet(t)
		startHost(t, writeManifest(t, threeResources), "--registration", "plugins-registry")
		k.registeredAll(t, counts)
		measure(t, "plugins-registry", k.restart, k.capacityIs(allHealthy(counts)))
	})
	for _, mode := range []string{"kubelet-socket", "plugins-registry"} {
		ds := report[mode]
		if len(ds) == 0 {
			continue
		}
		t.Logf("%-16s kubelet restart -> all %d resources allocatable: median %v, min %v, max %v (%d restarts%s)",
			mode, len(counts), median(ds).Round(time.Microsecond), percentile(ds, 0).Round(time.Microsecond),
			maxDuration(ds).Round(time.Microsecond), len(ds), raceNote())
	}
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s) - 1) * p / 100
	return s[i]
}

func raceNote() string {
	if raceEnabled {
		return "; host and kubelet built with -race"
	}
	return ""
}
