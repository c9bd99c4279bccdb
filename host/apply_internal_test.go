package host

import (
	"context"
	"sync"
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

	// The plugin stops when the test says so, or at the end whatever happens;
	// cleanups run last first: stop it, wait for Apply, then for the poller.
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(p.done) }) }
	quit, polled := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(quit); <-polled })
	applied := make(chan ApplyResult, 1)
	t.Cleanup(func() { <-applied })
	t.Cleanup(stop)
	go func() {
		res, err := h.Apply(after)
		if err != nil {
			t.Error(err)
		}
		applied <- res
	}()
	answered := make(chan bool, 1)
	go func() {
		defer close(polled)
		for {
			select {
			case <-quit:
				return
			default:
			}
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
		applied <- res // for the cleanup
		t.Fatalf("Apply returned %+v before the removed plugin stopped", res)
	default:
	}
	stop()
	res := <-applied
	applied <- res // for the cleanup
	if len(res.Removed) != 1 || res.Removed[0] != "example.com/gone" {
		t.Errorf("Apply removed %v, want [example.com/gone]", res.Removed)
	}
}
