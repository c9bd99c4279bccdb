package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// soakManifest has eight resources of assorted sizes.
var soakManifest = func() string {
	var b strings.Builder
	b.WriteString("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n")
	for i := range 8 {
		fmt.Fprintf(&b, "  - name: soak.example.com/r%d\n    count: %d\n", i, 1+i*3)
	}
	return b.String()
}()

// flapRecoveryLimit is how soon after the kubelet's last restart every
// resource must be registered again.
const flapRecoveryLimit = time.Second

// TestSoakKubeletFlapping restarts the kubelet's real device manager every
// 100-300 ms (each restart wipes every socket and creates a new
// kubelet.sock) for SOAK_DURATION (3 s smoke), then leaves it alone: within
// 1 s every resource is registered exactly once more (the kubelet's own
// counter) with all its devices allocatable, and the host process has not
// accumulated sockets, goroutines or fds.
func TestSoakKubeletFlapping(t *testing.T) {
	duration := soakDuration(t, 3*time.Second)
	k, h, counts := serve(t, soakManifest)
	names := resourceNames(counts)
	eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
	time.Sleep(200 * time.Millisecond)
	base := h.usage(t)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	restarts := 0
	peak := base
	for end := time.Now().Add(duration); time.Now().Before(end); {
		time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond))))
		k.restart()
		restarts++
		if ok, why := h.alive(); !ok {
			t.Fatalf("after %d kubelet restarts: %s", restarts, why)
		}
		if restarts%10 == 0 {
			u := h.usage(t)
			peak.goroutines, peak.fds = max(peak.goroutines, u.goroutines), max(peak.fds, u.fds)
		}
	}

	// The last restart, measured: the counter before the new kubelet starts.
	k.stop()
	before := registrationsOf(t, names...)
	k.start()
	restarts++
	onceMore := func() (bool, string) {
		for _, r := range names {
			if n := registrations(t, r); n != before[r]+1 {
				return false, fmt.Sprintf("%s: kubelet registration counter %d, want %d", r, n, before[r]+1)
			}
		}
		return k.capacityIs(allHealthy(counts))()
	}
	took, ok, why := poll(registerTimeout, onceMore)
	if !ok {
		t.Fatalf("%d restarts over %v, then left alone: after %v not every resource registered exactly once more: %s",
			restarts, duration, registerTimeout, why)
	}
	t.Logf("flapping: %d kubelet restarts in %v; after the last one every resource was registered once more and allocatable in %v",
		restarts, duration, took.Round(time.Millisecond))
	if took > flapRecoveryLimit {
		t.Errorf("recovery after the flapping took %v, want at most %v", took.Round(time.Millisecond), flapRecoveryLimit)
	}
	holds(t, 2*time.Second, "exactly one registration per resource after the flapping", func() (bool, string) {
		if ok, why := h.alive(); !ok {
			return false, why
		}
		return onceMore()
	})
	eventually(t, registerTimeout, "/readyz 200 after the flapping", h.statusIs("/readyz", 200))
	t.Logf("flapping: peak during it: %d goroutines, %d fds", peak.goroutines, peak.fds)
	h.checkHostNoLeak(t, "flapping", base, procUsage{goroutines: 5, fds: 2})
}
