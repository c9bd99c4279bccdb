package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	plugin "k8s.io/kubernetes/pkg/kubelet/cm/devicemanager/plugin/v1beta1"
)

// TestHarnessWithKubeletStub proves the harness on its own, with the
// kubelet's own stub device plugin instead of our binary: the private
// tmpfs, the device manager's registration, capacity, admission, the
// registration counter and a kubelet restart. When this fails, suspect the
// harness or the machine, not the host.
func TestHarnessWithKubeletStub(t *testing.T) {
	k := startKubelet(t)

	var st unix.Statfs_t
	if err := unix.Statfs(kubeletDir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Fatalf("%s is not the test's private tmpfs (type %#x, err %v)", kubeletDir, st.Type, err)
	}

	const res = "e2e.example.com/stub"
	devs := []*pluginapi.Device{{ID: "s0", Health: pluginapi.Healthy}, {ID: "s1", Health: pluginapi.Healthy}}
	stub := plugin.NewDevicePluginStub(k.logger, devs, filepath.Join(pluginDir, "stub.sock"), res, false, false)
	stub.SetAllocFunc(func(r *pluginapi.AllocateRequest, _ map[string]*pluginapi.Device) (*pluginapi.AllocateResponse, error) {
		resp := &pluginapi.AllocateResponse{}
		for _, c := range r.ContainerRequests {
			resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
				Envs: map[string]string{"STUB_IDS": strings.Join(c.DevicesIds, ",")},
			})
		}
		return resp, nil
	})
	ctx := klog.NewContext(context.Background(), k.logger)
	register := func() {
		t.Helper()
		if err := stub.Start(ctx); err != nil {
			t.Fatalf("stub: start: %v", err)
		}
		if err := stub.Register(ctx, pluginapi.KubeletSocket, res, ""); err != nil {
			t.Fatalf("stub: register: %v", err)
		}
	}
	before := registrations(t, res)
	// Before register, so a failed Register still stops the served stub;
	// Stop without Start is a no-op. It stops whichever stub is current.
	t.Cleanup(func() { _ = stub.Stop(k.logger) })
	register()

	want := allHealthy(map[string]int64{res: 2})
	eventually(t, registerTimeout, "the stub's devices", func() (bool, string) { return countsMatch(k.capacity(), want) })
	if got := registrations(t, res); got != before+1 {
		t.Fatalf("kubelet registration counter: %d, want %d", got, before+1)
	}

	pod := newPod("stub-user", podContainer{Name: "c", Limits: map[string]int64{res: 1}})
	if err := k.admit(pod); err != nil {
		t.Fatalf("admit: %v", err)
	}
	ids := k.devices(pod, "c")[res]
	if len(ids) != 1 {
		t.Fatalf("devices of stub-user/c: %v, want one %s", k.devices(pod, "c"), res)
	}
	opts := k.runOptions(pod, "c")
	if len(opts.Envs) != 1 || opts.Envs[0].Name != "STUB_IDS" || opts.Envs[0].Value != ids[0] {
		t.Fatalf("envs of stub-user/c: %+v, want STUB_IDS=%s", opts.Envs, ids[0])
	}
	greedy := newPod("greedy", podContainer{Name: "c", Limits: map[string]int64{res: 2}})
	if err := k.admit(greedy); err == nil {
		t.Fatalf("the kubelet admitted 2 %s with 1 left", res)
	}

	// A kubelet restart wipes the stub's socket; it comes back only once
	// the stub serves and registers again.
	k.restart()
	eventually(t, registerTimeout, "capacity to drop after the kubelet restart", func() (bool, string) {
		return countsMatch(k.capacity(), map[string]resourceCounts{res: {}})
	})
	if err := stub.Stop(k.logger); err != nil {
		t.Fatalf("stub: stop: %v", err)
	}
	stub = plugin.NewDevicePluginStub(k.logger, devs, filepath.Join(pluginDir, "stub.sock"), res, false, false)
	register()
	eventually(t, registerTimeout, "the stub's devices after the restart", func() (bool, string) { return countsMatch(k.capacity(), want) })
	if got := k.devices(pod, "c")[res]; len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("after the kubelet restart stub-user/c holds %v, want %v (from the checkpoint)", got, ids)
	}
}
