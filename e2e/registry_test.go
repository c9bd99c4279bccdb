package e2e

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// socketIdentity identifies one socket file (inode and change time), so a
// socket recreated under the same name is told apart.
type socketIdentity struct {
	ino   uint64
	ctime syscall.Timespec
}

func socketIdentities(t testing.TB, resources []string) map[string]socketIdentity {
	t.Helper()
	out := map[string]socketIdentity{}
	for _, r := range resources {
		var st syscall.Stat_t
		if err := syscall.Lstat(registrySocketPath(r), &st); err != nil {
			t.Fatalf("socket of %s: %v", r, err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
			t.Fatalf("%s is not a socket (mode %o)", registrySocketPath(r), st.Mode)
		}
		out[r] = socketIdentity{ino: st.Ino, ctime: st.Ctim}
	}
	return out
}

// In plugins-registry mode the kubelet's own plugin manager finds our
// sockets in plugins_registry, asks GetInfo, connects the device manager to
// them and tells us the outcome (NotifyRegistrationStatus): every resource
// registers without a Register call on kubelet.sock, pods get devices, and
// after a kubelet restart the new plugin manager finds the same sockets
// (not recreated, no plugin restart) and every resource comes back, the
// running pod's devices kept from the checkpoint. Run with
// --registration plugins-registry and with auto, which picks it because
// plugins_registry exists.
func TestPluginsRegistryWithTheKubeletsPluginManager(t *testing.T) {
	counts := manifestCounts(t, []byte(threeResources))
	names := resourceNames(counts)
	for _, mode := range []string{"plugins-registry", "auto"} {
		t.Run(mode, func(t *testing.T) {
			k := startRegistryKubelet(t)
			registeredBefore := registrationsOf(t, names...)
			manifest := writeManifest(t, threeResources)
			var h *host
			if mode == "auto" {
				h = startHost(t, manifest) // no --registration flag: auto
			} else {
				h = startHost(t, manifest, "--registration", mode)
			}
			first := k.registeredAll(t, counts)
			eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
			if !strings.Contains(h.logs(), `"registration":"plugins-registry"`) {
				t.Errorf("the host did not say it runs in plugins-registry mode")
			}
			if left := ourSockets(names); len(left) > 0 {
				t.Errorf("sockets in the device plugin dir in plugins-registry mode: %v", left)
			}
			if got := registrationsOf(t, names...); fmt.Sprint(got) != fmt.Sprint(registeredBefore) {
				t.Errorf("Register calls on kubelet.sock: %v, before %v; plugins-registry mode makes none", got, registeredBefore)
			}
			for _, r := range names {
				if n := h.metricValue(t, "sdp_registrations_total", `resource="`+r+`"`); n != 1 {
					t.Errorf("host counts %v registrations of %s, want 1 (the kubelet's NotifyRegistrationStatus)", n, r)
				}
			}

			pod := newPod("registry-user", podContainer{Name: "c", Limits: map[string]int64{fpga: 2, seat: 1}})
			if err := k.admit(pod); err != nil {
				t.Fatalf("admit: %v", err)
			}
			held := k.devices(pod, "c")
			if len(held[fpga]) != 2 || len(held[seat]) != 1 {
				t.Fatalf("registry-user/c got %v, want 2 %s and 1 %s", held, fpga, seat)
			}
			sockets := socketIdentities(t, names)

			k.restart()
			again := k.registeredAll(t, counts)
			t.Logf("every resource registered %v after the host started, %v after the kubelet restarted", first.Round(time.Millisecond), again.Round(time.Millisecond))
			if got := socketIdentities(t, names); fmt.Sprint(got) != fmt.Sprint(sockets) {
				t.Errorf("sockets changed across the kubelet restart: %v, before %v", got, sockets)
			}
			if n := h.metricValue(t, "sdp_plugin_restarts_total"); n != 0 {
				t.Errorf("host restarted plugins %v times across a kubelet restart; plugins-registry mode needs none", n)
			}
			for _, r := range names {
				if n := h.metricValue(t, "sdp_registrations_total", `resource="`+r+`"`); n != 2 {
					t.Errorf("host counts %v registrations of %s after the restart, want 2", n, r)
				}
			}
			if ok, why := h.alive(); !ok {
				t.Fatal(why)
			}
			if got := k.devices(pod, "c"); fmt.Sprint(got) != fmt.Sprint(held) {
				t.Errorf("after the kubelet restart registry-user/c holds %v, want %v (checkpoint)", got, held)
			}
			next := newPod("registry-next", podContainer{Name: "c", Limits: map[string]int64{fpga: 2, share: 3}})
			if err := k.admit(next); err != nil {
				t.Fatalf("admit after the kubelet restart: %v", err)
			}
			if got := k.devices(next, "c"); len(got[fpga]) != 2 || len(got[share]) != 3 {
				t.Fatalf("registry-next/c got %v", got)
			}
			for _, id := range k.devices(next, "c")[fpga] {
				for _, old := range held[fpga] {
					if id == old {
						t.Errorf("%s %s given to registry-next while registry-user holds it", fpga, id)
					}
				}
			}
		})
	}
	if _, err := os.Stat(registryDir); !os.IsNotExist(err) {
		t.Errorf("plugins_registry left behind (later tests in auto mode would use it): %v", err)
	}
}

// In plugins-registry mode the kubelet's plugin watcher also sees sockets
// go: a socket deleted behind the host's back is deregistered, and the host
// serves a new one, which the watcher registers, while the other resources
// are left alone; a restarted host (SIGTERM, then a new process) gets every
// resource back.
func TestPluginsRegistryDeletedSocketAndHostRestart(t *testing.T) {
	counts := manifestCounts(t, []byte(threeResources))
	names := resourceNames(counts)
	k := startRegistryKubelet(t)
	manifest := writeManifest(t, threeResources)
	h := startHost(t, manifest, "--registration", "plugins-registry")
	k.registeredAll(t, counts)

	victim := names[0]
	before := map[string]float64{}
	for _, r := range names {
		before[r] = h.metricValue(t, "sdp_registrations_total", `resource="`+r+`"`)
	}
	if err := os.Remove(registrySocketPath(victim)); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, registerTimeout, victim+" registered again through the watcher", func() (bool, string) {
		if n := h.metricValue(t, "sdp_registrations_total", `resource="`+victim+`"`); n <= before[victim] {
			return false, fmt.Sprintf("host registrations of %s still %v", victim, n)
		}
		return k.capacityIs(allHealthy(counts))()
	})
	holds(t, 500*time.Millisecond, "the other resources untouched", func() (bool, string) {
		for _, r := range names[1:] {
			if n := h.metricValue(t, "sdp_registrations_total", `resource="`+r+`"`); n != before[r] {
				return false, fmt.Sprintf("%s registered again (%v -> %v) when only %s's socket was deleted", r, before[r], n, victim)
			}
		}
		return k.capacityIs(allHealthy(counts))()
	})

	h.stop()
	t.Logf("deleted socket -> registered again: %v", took.Round(time.Millisecond))
	if code := h.exitCode(); code != 0 {
		t.Fatalf("host exit code %d", code)
	}
	none := map[string]resourceCounts{}
	for _, r := range names {
		none[r] = resourceCounts{}
	}
	eventually(t, registerTimeout, "no devices of ours after SIGTERM", k.capacityIs(none))
	startHost(t, manifest, "--registration", "plugins-registry")
	t.Logf("new host -> every resource registered: %v", k.registeredAll(t, counts).Round(time.Millisecond))
}
