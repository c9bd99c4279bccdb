package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// TestSoakStreamChurnBinary opens and drops SOAK_STREAMS (300 smoke)
// ListAndWatch streams on the real binary while the kubelet's device
// manager is connected: each on a new connection, cancelled after the
// first list, cancelled at once, or cut by closing the connection. The
// process's goroutines (its /metrics) and open fds (/proc/PID/fd) come
// back to where they were, and the kubelet never loses a resource.
func TestSoakStreamChurnBinary(t *testing.T) {
	streams := soakStreams(t, 300)
	const workers = 8
	k, h, counts := serve(t, threeResources)
	names := resourceNames(counts)
	before := registrationsOf(t, names...)
	eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
	base := h.steadyUsage(t)

	var next, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	peak := base
	start := time.Now()
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
				if err := churnBinaryStream(socketPath(names[i%len(names)]), i/len(names)%3); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	// Should the test stop early (t.Fatal in usage), the workers take no
	// new stream and are waited for.
	defer func() {
		next.Store(int64(streams))
		wg.Wait()
	}()
	// One waiter for the workers: a new one per sample would pile up
	// goroutines blocked on wg.
	workersDone := waitGroupDone(&wg)
	for done := false; !done; {
		select {
		case <-workersDone:
			done = true
		case <-time.After(500 * time.Millisecond):
			u := h.usage(t)
			peak.goroutines, peak.fds = max(peak.goroutines, u.goroutines), max(peak.fds, u.fds)
		}
	}
	took := time.Since(start)
	t.Logf("churn of the binary: %d streams in %v by %d workers; peak %d goroutines, %d fds", streams, took.Round(time.Millisecond), workers, peak.goroutines, peak.fds)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d streams failed; first: %v", n, streams, firstErr)
	}
	h.checkHostNoLeak(t, "stream churn", base, procUsage{goroutines: 3, fds: 2})
	for _, r := range names {
		if n := registrations(t, r); n != before[r] {
			t.Errorf("%s registered again during the churn (kubelet counter %d -> %d)", r, before[r], n)
		}
	}
	if ok, why := k.capacityIs(allHealthy(counts))(); !ok {
		t.Errorf("after the churn: %s", why)
	}
}

// churnBinaryStream opens a connection and a ListAndWatch stream on sock
// and ends them: 0 cancel after the first list, 1 cancel at once, 2 close
// the connection under the open stream.
func churnBinaryStream(sock string, mode int) error {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return fmt.Errorf("open a stream on %s: %w", sock, err)
	}
	if mode == 1 {
		cancel()
		_, _ = stream.Recv()
		return nil
	}
	if resp, err := stream.Recv(); err != nil || len(resp.Devices) == 0 {
		return fmt.Errorf("first list from %s: %v, %v", sock, resp, err)
	}
	if mode == 2 {
		conn.Close()
	} else {
		cancel()
	}
	_, _ = stream.Recv()
	return nil
}

func waitGroupDone(wg *sync.WaitGroup) <-chan struct{} {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	return ch
}
