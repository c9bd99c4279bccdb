package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashManifests are what the ConfigMap alternates between: a reload
// changes a device count, removes one resource and adds another.
var crashManifests = [2]string{
	threeResources,
	strings.NewReplacer("count: 16", "count: 9", "name: e2e.example.com/seat\n    ids: [seat-a, seat-b, seat-c]", "name: e2e.example.com/lane\n    count: 2").
		Replace(threeResources),
}

// TestSoakCrashSafety SIGKILLs the host at random moments while it starts,
// while it reloads its manifest (a ConfigMap swap) and while it shuts down
// after SIGTERM, and each time starts a new one: it must serve the full
// current manifest, whatever the dead one left behind (stale sockets of
// ours, a half-done reload). SOAK_DURATION sets the number of kills (one
// per second of it); the smoke run kills three times, once per phase.
func TestSoakCrashSafety(t *testing.T) {
	kills := max(3, int(soakDuration(t, 0)/time.Second))
	if crashManifests[0] == crashManifests[1] {
		t.Fatal("the two crash manifests are the same")
	}
	k := startKubelet(t)
	cm := newConfigMapVolume(t, "manifest.yaml", crashManifests[0])
	current := 0
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	phases := [3]string{"start-up", "reload", "shutdown"}
	var restartTook []time.Duration
	staleTotal, orphansMax := 0, 0
	for i := range kills {
		phase := phases[i%3]
		victim := startHost(t, cm.path())
		var delay time.Duration
		switch phase {
		case "start-up":
			// From exec to registered: parse, sockets, registration.
			delay = time.Duration(rng.Int64N(int64(400 * time.Millisecond)))
		case "reload":
			k.registeredAll(t, manifestCounts(t, []byte(crashManifests[current])))
			current = 1 - current
			cm.update(crashManifests[current])
			delay = time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
		case "shutdown":
			k.registeredAll(t, manifestCounts(t, []byte(crashManifests[current])))
			victim.signal(syscall.SIGTERM)
			delay = time.Duration(rng.Int64N(int64(600 * time.Millisecond)))
		}
		time.Sleep(delay)
		killed := victim.kill(t)
		counts := manifestCounts(t, []byte(crashManifests[current]))
		names := resourceNames(counts)
		stale := len(ourSockets(names))
		staleTotal += stale
		orphans := pluginSocketCount(t) - stale // of a resource the reload removed

		// A new process on the same node: it serves everything the
		// ConfigMap says now.
		next := startHost(t, cm.path())
		took := eventually(t, registerTimeout, fmt.Sprintf("kill %d (%s, %v in, %s): the new host serving the full manifest",
			i+1, phase, delay.Round(time.Millisecond), killed), k.capacityIs(allHealthy(counts)))
		restartTook = append(restartTook, took)
		eventually(t, registerTimeout, "/readyz 200 on the new host", next.statusIs("/readyz", 200))
		if stale > 0 {
			eventually(t, registerTimeout, "the new host to report the stale sockets it replaced", next.logged(0, logMatch{level: "INFO",
				fields: map[string]string{"msg": "removed a stale socket left by an earlier run"}}))
		}
		if n := len(ourSockets(names)); n != len(names) {
			t.Errorf("kill %d: %d sockets of the manifest's resources in the plugin dir, want %d", i+1, n, len(names))
		}
		// A socket of a resource the dead process was removing stays: the
		// new process does not serve that resource, and a socket it did not
		// create is not its to delete. The next kubelet restart wipes it.
		if n := pluginSocketCount(t) - len(names); n != orphans {
			t.Errorf("kill %d: %d other sockets in the plugin dir, %d before the new host started", i+1, n, orphans)
		}
		orphansMax = max(orphansMax, orphans)
		// A clean stop, so the next victim starts like a new pod would.
		next.signal(syscall.SIGTERM)
		<-next.done
		if code := next.exitCode(); code != 0 {
			t.Fatalf("kill %d: the new host exited %d after SIGTERM: %v", i+1, code, next.waitErr)
		}
	}
	t.Logf("crash safety: %d SIGKILLs (start-up, reload, shutdown in turn); stale sockets left behind and replaced %d, "+
		"of removed resources left in place at most %d; new process serving everything after median %v, max %v",
		kills, staleTotal, orphansMax, median(restartTook).Round(time.Millisecond), maxDuration(restartTook).Round(time.Millisecond))
}

// kill SIGKILLs the host and waits for it; it says whether the process was
// still running (a shutdown may have finished first).
func (h *host) kill(t testing.TB) string {
	t.Helper()
	if h.exited() {
		return fmt.Sprintf("had already exited: %v", h.waitErr)
	}
	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL the host: %v", err)
	}
	<-h.done
	if h.cmd.ProcessState.ExitCode() != -1 {
		return fmt.Sprintf("had exited %d", h.cmd.ProcessState.ExitCode())
	}
	return "killed"
}
