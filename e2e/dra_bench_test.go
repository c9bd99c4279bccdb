package e2e

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkDRAPrepareVsAllocate: pod admission of one device of the same
// resource two ways, served by one host process: PrepareResources through
// the kubelet's DRA manager (the kubelet reads the claim, calls
// NodePrepareResources; the driver reads the claim too and writes the
// claim's CDI spec and its checkpoint) against Allocate through the
// kubelet's device manager (the plugin's Allocate, the device manager's
// checkpoint). The two alternate, the order flipping each round; each
// reports its median and p90 in ms, and ratio-median is the median of the
// per-round ratios prepare/allocate. Claims are created and allocated
// (playing the scheduler) outside the samples; unprepare is reported too.
//
// "paced" starts a round every 250 ms at most, well below any client-side
// rate limit of the host's API client: the cost of a prepare.
// "back-to-back" runs the rounds without a pause, as a node starting many
// pods at once: a limiter too tight shows here (with client-go's default of
// 5 requests/s after a burst of 10, each prepare waited ~190 ms for it).
func BenchmarkDRAPrepareVsAllocate(b *testing.B) {
	b.Run("paced", func(b *testing.B) { benchPrepareVsAllocate(b, 250*time.Millisecond) })
	b.Run("back-to-back", func(b *testing.B) { benchPrepareVsAllocate(b, 0) })
}

func benchPrepareVsAllocate(b *testing.B, pace time.Duration) {
	const (
		res   = "e2e.example.com/bdra"
		plain = "e2e.example.com/bplain"
		count = 8
	)
	driver := driverName(res)
	k, manifestPath := draSetup(b, draManifest(draResource(res, count), pluginResource(plain, count)), res)
	startDRAHost(b, k, manifestPath)
	eventually(b, registerTimeout, "the driver registered", k.driverRegistered(driver, true))
	eventually(b, registerTimeout, "the slices", slicesAre(k.api, driver, wantSlices{ids: deviceIDs(res, count)}))
	k.registeredAll(b, map[string]int64{plain: count})

	var prepares, unprepares, allocates []time.Duration
	var ratios []float64
	round := 0
	var last time.Time
	for b.Loop() {
		b.StopTimer()
		if pace > 0 {
			// Load shaping, not synchronisation: see the benchmark's comment.
			time.Sleep(time.Until(last.Add(pace)))
			last = time.Now()
		}
		name := fmt.Sprintf("bench-%d", round)
		pod := claimPod(name, name)
		createAllocatedClaim(b, k.api, name, allocation{driver: driver, request: "dev", devices: []string{deviceIDs(res, count)[round%count]}}, pod)
		plainPod := newPod(name+"-plain", podContainer{Name: "c", Limits: map[string]int64{plain: 1}})
		b.StartTimer()

		prepare := func() {
			start := time.Now()
			if err := k.prepare(pod); err != nil {
				b.Fatalf("prepare: %v", err)
			}
			prepares = append(prepares, time.Since(start))
		}
		allocate := func() {
			start := time.Now()
			if err := k.admit(plainPod); err != nil {
				b.Fatalf("allocate: %v", err)
			}
			allocates = append(allocates, time.Since(start))
		}
		if round%2 == 0 {
			prepare()
			allocate()
		} else {
			allocate()
			prepare()
		}
		ratios = append(ratios, float64(prepares[round])/float64(allocates[round]))

		start := time.Now()
		if err := k.unprepare(pod); err != nil {
			b.Fatalf("unprepare: %v", err)
		}
		unprepares = append(unprepares, time.Since(start))
		k.remove(plainPod)
		round++
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(median(prepares)), "prepare-ms-median")
	b.ReportMetric(ms(percentile(prepares, 90)), "prepare-ms-p90")
	b.ReportMetric(ms(median(allocates)), "allocate-ms-median")
	b.ReportMetric(ms(percentile(allocates, 90)), "allocate-ms-p90")
	b.ReportMetric(ms(median(unprepares)), "unprepare-ms-median")
	b.ReportMetric(medianFloat(ratios), "ratio-median")
	b.Logf("prepare median %v p90 %v; allocate median %v p90 %v; unprepare median %v; prepare/allocate median ratio %.1f over %d rounds (race detector in the host: %v)",
		median(prepares).Round(10*time.Microsecond), percentile(prepares, 90).Round(10*time.Microsecond),
		median(allocates).Round(10*time.Microsecond), percentile(allocates, 90).Round(10*time.Microsecond),
		median(unprepares).Round(10*time.Microsecond), medianFloat(ratios), round, raceEnabled)
}

// BenchmarkDRAManifestToSlices: from the manifest applied to the node's
// ResourceSlices in the API server holding the devices it lists, polled
// every 5 ms. "start" is a host starting on the manifest (stopped outside
// the sample). "reload" is the manifest file rewritten, the count growing
// and shrinking by one in turn: "paced" one rewrite a second at most,
// below any client-side rate limit of the host's API client;
// "back-to-back" the next rewrite as soon as the slices showed the last
// one, where a limiter too tight would set the pace.
func BenchmarkDRAManifestToSlices(b *testing.B) {
	b.Run("start", func(b *testing.B) {
		k, manifestPath := draSetup(b, draManifest(draResource(sliceRes, 8)), sliceRes)
		var samples []time.Duration
		for b.Loop() {
			h := startDRAHost(b, k, manifestPath)
			samples = append(samples, waitSliceDevices(b, k.api, 8))
			b.StopTimer()
			h.stop()
			eventually(b, registerTimeout, "the slices deleted", noSlices(k.api, driverName(sliceRes)))
			b.StartTimer()
		}
		report(b, "host started -> slices in the API server", samples)
	})
	b.Run("reload/paced", func(b *testing.B) { benchReloadToSlices(b, time.Second) })
	b.Run("reload/back-to-back", func(b *testing.B) { benchReloadToSlices(b, 0) })
}

// sliceRes is the resource of BenchmarkDRAManifestToSlices.
const sliceRes = "e2e.example.com/bslice"

// waitSliceDevices waits, polling every 5 ms, until the node's slices of
// sliceRes hold count devices, and returns how long that took.
func waitSliceDevices(b *testing.B, api *apiServer, count int) time.Duration {
	b.Helper()
	const every = 5 * time.Millisecond
	took, ok, why := pollEach(every, registerTimeout, slicesAre(api, driverName(sliceRes), wantSlices{ids: deviceIDs(sliceRes, count)}))
	if !ok {
		b.Fatalf("waited %v for %d devices in the slices: %s", registerTimeout, count, why)
	}
	return took
}

func benchReloadToSlices(b *testing.B, pace time.Duration) {
	k, manifestPath := draSetup(b, draManifest(draResource(sliceRes, 8)), sliceRes)
	startDRAHost(b, k, manifestPath)
	waitSliceDevices(b, k.api, 8)
	var samples []time.Duration
	count := 8
	var last time.Time
	for b.Loop() {
		if pace > 0 {
			b.StopTimer()
			// Load shaping, not synchronisation: see the benchmark's comment.
			time.Sleep(time.Until(last.Add(pace)))
			last = time.Now()
			b.StartTimer()
		}
		count = 17 - count // 9, 8, 9, ...
		rewriteManifest(b, manifestPath, draManifest(draResource(sliceRes, count)))
		samples = append(samples, waitSliceDevices(b, k.api, count))
	}
	report(b, "manifest rewritten -> slices in the API server", samples)
}

func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(xs))
	for i, x := range xs {
		ds[i] = time.Duration(x * 1e6)
	}
	return float64(median(ds)) / 1e6
}
