package host

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"simple-device-plugin/manifest"
)

// While Apply waits for a removed plugin to stop, the host answers
// /readyz and status calls: its lock is not held across the wait.
func TestApplyDoesNotHoldTheLockWhileRemovalsStop(t *testing.T) {
	h := New(Config{DevicePluginDir: ShortTempDir(t), NodeName: "node-1"})
	h.group, h.groupCtx = &errgroup.Group{}, context.Background()
	before, err := manifest.Parse([]byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/gone, count: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// A plugin that stops only when the test says so.
	p := newPlugin(h, before.Resources[0])
	p.cancel = func(error) {}
	h.plugins[p.name], h.bySocket[socketBase(p)] = p, p
	after, err := manifest.Parse([]byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/elsewhere, count: 1, nodes: [gpu-*]}\n"))
	if err != nil {
		t.Fatal(err)
	}

	applied := make(chan ApplyResult, 1)
	go func() {
		res, err := h.Apply(after)
		if err != nil {
			t.Error(err)
		}
		applied <- res
	}()
	answered := make(chan bool, 1)
	go func() {
		for {
			if ok, _ := h.Ready(); ok { // the removed plugin is gone from the list
				h.Statuses()
				answered <- true
				return
			}
		}
	}()
	select {
	case <-answered:
	case <-time.After(time.Minute):
		t.Fatal("Ready did not answer while Apply waited for a removed plugin to stop")
	}
	select {
	case res := <-applied:
		t.Fatalf("Apply returned %+v before the removed plugin stopped", res)
	default:
	}
	close(p.done)
	if res := <-applied; len(res.Removed) != 1 || res.Removed[0] != "example.com/gone" {
		t.Errorf("Apply removed %v, want [example.com/gone]", res.Removed)
	}
}
