package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// The benchmarks measure, they never assert a time. Each iteration is one
// sample; run them with a fixed count and without -race (the host is
// built with -race when the tests are):
//
//	cd e2e && go test -count=1 -run '^$' -bench . -benchtime 20x ./...
//
// Most report the median and the max of the samples in milliseconds
// (ms-median, ms-max); ns/op is the mean.

// measureEvery is the polling interval while timing: GetCapacity costs a
// few microseconds, so the figures are good to a fraction of a millisecond.
const measureEvery = 200 * time.Microsecond

// measure waits for cond like eventually, polling faster, and returns how
// long it took.
func measure(b *testing.B, what string, cond condition) time.Duration {
	b.Helper()
	took, ok, why := pollEach(measureEvery, registerTimeout, cond)
	if !ok {
		b.Fatalf("waited %v for %s: %s", registerTimeout, what, why)
	}
	return took
}

func report(b *testing.B, what string, samples []time.Duration) {
	b.Helper()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(median(samples)), "ms-median")
	b.ReportMetric(ms(maxDuration(samples)), "ms-max")
	if len(samples) > 1 {
		b.Logf("%s: median %v, max %v over %d samples (race detector in the host: %v)",
			what, median(samples).Round(10*time.Microsecond), maxDuration(samples).Round(10*time.Microsecond), len(samples), raceEnabled)
	}
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

// BenchmarkKubeletRestart: from a new kubelet listening (the old one
// stopped, the sockets wiped) to every resource of the three-resource
// manifest registered with all its devices, in each registration mode (in
// plugins-registry mode the kubelet's plugin manager restarts too and
// finds the sockets where they are). Goal: < 50 ms median.
func BenchmarkKubeletRestart(b *testing.B) {
	counts := manifestCounts(b, []byte(threeResources))
	b.Run("kubelet-socket", func(b *testing.B) {
		k := startKubelet(b)
		startHost(b, writeManifest(b, threeResources), "--registration", "kubelet-socket")
		k.registeredAll(b, counts)
		benchRestarts(b, k.stop, k.start, k.capacityIs(allHealthy(counts)))
	})
	b.Run("plugins-registry", func(b *testing.B) {
		k := startRegistryKubelet(b)
		startHost(b, writeManifest(b, threeResources), "--registration", "plugins-registry")
		k.registeredAll(b, counts)
		stop := func() { k.stopPluginManager(); k.stop() }
		start := func() { k.start(); k.startPluginManager() }
		benchRestarts(b, stop, start, k.capacityIs(allHealthy(counts)))
	})
}

// benchRestarts samples, once per iteration, the time from start returning
// (a new kubelet listening) to ready; stop runs outside the timer.
func benchRestarts(b *testing.B, stop, start func(), ready condition) {
	var samples []time.Duration
	for b.Loop() {
		b.StopTimer()
		stop()
		b.StartTimer()
		start()
		samples = append(samples, measure(b, "every resource after a kubelet restart", ready))
	}
	report(b, "kubelet restart -> all registered", samples)
}

// BenchmarkKubeletFlapRecovery: the kubelet restarted ten times, every
// 100-300 ms, then left alone; from the last new kubelet listening to every
// resource of the eight-resource soak manifest registered exactly once
// more with all its devices. TestSoakKubeletFlapping asserts that this
// happens; this says how fast.
func BenchmarkKubeletFlapRecovery(b *testing.B) {
	const flaps = 10
	k, _, counts := serve(b, soakManifest)
	names := resourceNames(counts)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var samples []time.Duration
	for b.Loop() {
		b.StopTimer()
		for range flaps {
			// The flapping itself: how long each kubelet lives.
			time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond))))
			k.restart()
		}
		k.stop()
		before := registrationsOf(b, names...)
		b.StartTimer()
		k.start()
		samples = append(samples, measure(b, "every resource registered once more after the flapping",
			registeredOnceMore(b, k, names, before, counts)))
	}
	report(b, "kubelet flapping -> all registered once more", samples)
}

// BenchmarkDeletedSocket: from one plugin's socket deleted to that plugin
// registered again with all its devices. Goal: < 50 ms.
func BenchmarkDeletedSocket(b *testing.B) {
	k, _, counts := serve(b, threeResources)
	const victim = "e2e.example.com/seat"
	var samples []time.Duration
	for b.Loop() {
		before := map[string]int{victim: registrations(b, victim)}
		again := registeredOnceMore(b, k, []string{victim}, before, counts)
		start := time.Now()
		if err := os.Remove(socketPath(victim)); err != nil {
			b.Fatal(err)
		}
		measure(b, victim+" registered again", again)
		samples = append(samples, time.Since(start))
		b.StopTimer()
		// The old stream's end reaches the kubelet after the new
		// registration: the next round starts once it has, without
		// undoing that registration.
		holds(b, 50*time.Millisecond, victim+" registered once more with all its devices", again)
		b.StartTimer()
	}
	report(b, "socket deleted -> registered again", samples)
}

// BenchmarkConfigMapSwap: from the ConfigMap's ..data swap to the kubelet
// reporting the new capacity (a resource alternating between 4 and 5
// devices). The host applies a swap at once, without a debounce. Goal:
// < 300 ms median.
func BenchmarkConfigMapSwap(b *testing.B) {
	manifestWith := func(n int) string {
		return fmt.Sprintf("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: e2e.example.com/swap\n    count: %d\n", n)
	}
	k := startKubelet(b)
	cm := newConfigMapVolume(b, "manifest.yaml", manifestWith(4))
	startHost(b, cm.path())
	k.registeredAll(b, map[string]int64{"e2e.example.com/swap": 4})
	var samples []time.Duration
	n := 4
	for b.Loop() {
		n = 9 - n // 5, 4, 5, ...
		start := time.Now()
		cm.update(manifestWith(n))
		measure(b, fmt.Sprintf("capacity %d after the swap", n), k.capacityIs(allHealthy(map[string]int64{"e2e.example.com/swap": int64(n)})))
		samples = append(samples, time.Since(start))
	}
	report(b, "ConfigMap swap -> kubelet capacity", samples)
}

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

// BenchmarkPreferredAllocationVsAllocate: GetPreferredAllocation for a
// 1,000-device resource and a request of 8, against Allocate of 8 devices,
// one sub-benchmark per allocation policy. Same host process, same socket;
// one iteration is one round of both calls, the order alternating, each
// call as the kubelet makes it (all 1,000 IDs available, in no particular
// order, as the kubelet's set gives them). It reports the median and p90
// of each call in microseconds, the ratio of the medians and the median of
// the per-round ratios; ns/op is a whole round.
func BenchmarkPreferredAllocationVsAllocate(b *testing.B) {
	k := startKubelet(b)
	// No spec defines the names of its cdiDevices: do not check them.
	startHost(b, writeManifest(b, bigManifest), "--registration", "kubelet-socket", "--cdi-registry-dirs=")
	k.registeredAll(b, map[string]int64{"e2e.example.com/big-packed": 1000, "e2e.example.com/big-spread": 1000, "e2e.example.com/big-first": 1000})

	// warmup rounds run untimed before the loop, so a new connection's
	// one-off costs stay out of the figures.
	const warmup, size = 40, 8
	for _, policy := range []string{"packed", "spread", "first"} {
		b.Run(policy, func(b *testing.B) {
			res := "e2e.example.com/big-" + policy
			conn, err := grpc.NewClient("unix://"+socketPath(res), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatalf("dial %s: %v", res, err)
			}
			defer conn.Close()
			client := pluginapi.NewDevicePluginClient(conn)
			available := make([]string, 1000)
			for i := range available {
				available[i] = fmt.Sprintf("big-%s-%d", policy, i)
			}
			ctx := context.Background()
			// round makes both calls, in the order r gives, and returns
			// how long each took.
			round := func(r int) (pref, alloc time.Duration) {
				rand.Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
				var ids []string
				preferred := func() time.Duration {
					start := time.Now()
					resp, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
						ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: available, AllocationSize: size}},
					})
					took := time.Since(start)
					if err != nil || len(resp.ContainerResponses) != 1 || len(resp.ContainerResponses[0].DeviceIDs) != size {
						b.Fatalf("GetPreferredAllocation %s: %v %v", res, resp, err)
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
						b.Fatalf("Allocate %s: %v %v", res, resp, err)
					}
					return took
				}
				if r%2 == 0 {
					pref = preferred()
					alloc = allocate()
				} else {
					alloc = allocate()
					pref = preferred()
				}
				return pref, alloc
			}
			for r := range warmup {
				round(r)
			}
			var pref, alloc []time.Duration
			var ratios []float64
			r := warmup
			for b.Loop() {
				p, a := round(r)
				r++
				pref, alloc = append(pref, p), append(alloc, a)
				ratios = append(ratios, float64(p)/float64(a))
			}
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(median(pref)), "us-preferred-p50")
			b.ReportMetric(us(percentile(pref, 90)), "us-preferred-p90")
			b.ReportMetric(us(median(alloc)), "us-allocate-p50")
			b.ReportMetric(us(percentile(alloc, 90)), "us-allocate-p90")
			b.ReportMetric(float64(median(pref))/float64(median(alloc)), "ratio-of-p50s")
			sort.Float64s(ratios)
			b.ReportMetric(ratios[len(ratios)/2], "ratio-per-round-p50")
		})
	}
}

// BenchmarkDiscoverHotplug: from a device node made (add) or removed
// (remove) under --host-root to the kubelet's allocatable for the
// discover: resource that matches it changing. The host sees the node by
// fsnotify and scans after a 20 ms debounce. Goal: < 1 s
// (docs/manifest.md).
func BenchmarkDiscoverHotplug(b *testing.B) {
	const tty = "e2e.example.com/tty"
	tree := newHostTree(b)
	tree.char("/dev/ttyUSB0", 188, 0)
	k := startKubelet(b)
	startDiscoverHost(b, tree, "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n"+
		"  - name: "+tty+"\n    discover: {paths: [\"/dev/ttyUSB*\"]}\n")
	k.registeredAll(b, map[string]int64{tty: 1})
	plugged := k.capacityIs(allHealthy(map[string]int64{tty: 2}))
	unplugged := k.capacityIs(allHealthy(map[string]int64{tty: 1}))
	plug := func() { tree.char("/dev/ttyUSB1", 188, 1) }
	unplug := func() { tree.remove("/dev/ttyUSB1") }
	// sample times change from the moment it is made until cond holds;
	// undo and its wait run outside the timer.
	sample := func(b *testing.B, what string, change, undo func(), cond, undone condition) {
		var samples []time.Duration
		for b.Loop() {
			start := time.Now()
			change()
			measure(b, what, cond)
			samples = append(samples, time.Since(start))
			b.StopTimer()
			undo()
			measure(b, "undone", undone)
			b.StartTimer()
		}
		report(b, what, samples)
	}
	b.Run("add", func(b *testing.B) {
		sample(b, "mknod -> kubelet allocatable", plug, unplug, plugged, unplugged)
	})
	b.Run("remove", func(b *testing.B) {
		plug()
		measure(b, "the node to remove", plugged)
		sample(b, "rm -> kubelet allocatable", unplug, plug, unplugged, plugged)
		unplug() // as the next run expects
		measure(b, "one node left", unplugged)
	})
}
