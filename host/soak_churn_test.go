package host_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// How a churn stream ends.
const (
	churnCancelAfterFirst = iota // recv the first list, cancel the stream, close the connection
	churnCancelAtOnce            // cancel before the first list arrives
	churnSharedConn              // a stream on a long-lived connection: recv, cancel; the connection stays
	churnCloseConn               // recv, then close the connection under the open stream (a client that dies)
	churnCancelMidUpdate         // recv until a reload's update arrives, then cancel
	churnModes
)

var churnModeNames = [churnModes]string{"cancel after first list", "cancel at once", "shared connection", "connection closed", "cancel after an update"}

// TestSoakStreamChurn opens and drops ListAndWatch streams by the
// thousand, in every way a client can go away, while reloads send
// updates; the host's goroutines and open fds (in this process) must come
// back to where they started, and the kubelet's own streams are untouched.
func TestSoakStreamChurn(t *testing.T) {
	streams := soakCount(t, soakStreamsEnv, 300)
	const workers = 8
	resources := []string{"example.com/a", "example.com/b", "example.com/c"}
	before := mustParse(t, threeResources)
	after := mustParse(t, strings.Replace(threeResources, "count: 2", "count: 3", 1))

	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, before)
	waitRegistered(t, k, resources...)

	dialSock := func(resource string) (*grpc.ClientConn, pluginapi.DevicePluginClient) {
		conn := dialConn(t, dir, resource)
		return conn, pluginapi.NewDevicePluginClient(conn)
	}
	shared := make([]pluginapi.DevicePluginClient, len(resources))
	var sharedConns []*grpc.ClientConn
	for i, r := range resources {
		conn, c := dialSock(r)
		sharedConns = append(sharedConns, conn)
		shared[i] = c
	}

	var counts [churnModes]atomic.Int64
	var problems sync.Map
	churnOne := func(i int) {
		r := i % len(resources)
		mode := (i / len(resources)) % churnModes
		if err := churnStream(mode, shared[r], func() (*grpc.ClientConn, pluginapi.DevicePluginClient) { return dialSock(resources[r]) }); err != nil {
			problems.Store(fmt.Sprintf("%s on %s: %v", churnModeNames[mode], resources[r], err), true)
			return
		}
		counts[mode].Add(1)
	}
	// Reloads every 20 ms: the device list of example.com/c changes, so
	// open streams get updates while they are being dropped.
	stopReloads := make(chan struct{})
	reloadsDone := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopReloads:
				reloadsDone <- n
				return
			case <-tick.C:
				m := before
				if n%2 == 0 {
					m = after
				}
				if _, err := rh.Apply(m); err != nil {
					problems.Store(fmt.Sprintf("apply: %v", err), true)
				}
				n++
			}
		}
	}()

	// One stream in each mode first, so lazily started goroutines (gRPC's
	// and the runtime's) are part of the baseline, then the baseline.
	for i := range churnModes * len(resources) {
		churnOne(i)
	}
	base := steady(t) // once the warm-up streams' handlers have ended

	start := time.Now()
	var next atomic.Int64
	var peak atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= streams {
					return
				}
				churnOne(i)
				if i%100 == 0 {
					if g := int64(runtime.NumGoroutine()); g > peak.Load() {
						peak.Store(g)
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(stopReloads)
	reloads := <-reloadsDone

	var modes []string
	for m := range churnModes {
		modes = append(modes, fmt.Sprintf("%s %d", churnModeNames[m], counts[m].Load()))
	}
	t.Logf("churn: %d streams in %v by %d workers during %d reloads (%s); peak %d goroutines",
		streams, took.Round(time.Millisecond), workers, reloads, strings.Join(modes, ", "), peak.Load())
	problems.Range(func(k, _ any) bool { t.Error(k); return true })
	checkNoLeak(t, "churn (host running, kubelet connected)", base, usage{goroutines: 4, fds: 2})

	// The kubelet's own streams lived through it all.
	for _, r := range resources {
		if n := k.Registrations(r); n != 1 {
			t.Errorf("%s registered %d times during the churn, want 1", r, n)
		}
		if k.Endpoint(r) == nil {
			t.Errorf("the kubelet's stream of %s ended during the churn", r)
		}
	}
	for _, c := range sharedConns {
		c.Close()
	}
}

// churnStream opens one ListAndWatch stream and ends it the way mode says.
func churnStream(mode int, shared pluginapi.DevicePluginClient, dial func() (*grpc.ClientConn, pluginapi.DevicePluginClient)) error {
	client := shared
	var conn *grpc.ClientConn
	if mode != churnSharedConn {
		conn, client = dial()
		defer conn.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	switch mode {
	case churnCancelAtOnce:
		cancel()
		_, _ = stream.Recv()
		return nil
	case churnCloseConn:
		if _, err := stream.Recv(); err != nil {
			return fmt.Errorf("first list: %w", err)
		}
		conn.Close()
		_, _ = stream.Recv()
		return nil
	}
	first, err := stream.Recv()
	if err != nil {
		return fmt.Errorf("first list: %w", err)
	}
	if len(first.Devices) == 0 {
		return fmt.Errorf("first list is empty")
	}
	if mode == churnCancelMidUpdate {
		// Every resource's list changes with some reload: example.com/c's
		// directly; a and b are unchanged, so wait only on c.
		if first.Devices[0].ID == "c-0" {
			if _, err := stream.Recv(); err != nil {
				return fmt.Errorf("update: %w", err)
			}
		}
	}
	cancel()
	_, _ = stream.Recv()
	return nil
}
