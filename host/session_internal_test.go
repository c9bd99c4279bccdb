package host

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
)

// The counter follows the server's connections as gRPC opens and closes
// them, and waitIdle returns when the last one closes.
func TestConnCounterFollowsConnections(t *testing.T) {
	sock := filepath.Join(ShortTempDir(t), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	conns := newConnCounter()
	server := grpc.NewServer(grpc.StatsHandler(conns))
	served := make(chan struct{})
	go func() { defer close(served); _ = server.Serve(lis) }()
	defer func() { server.Stop(); <-served }()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	waitOpen := func(want int) {
		t.Helper()
		for {
			open, changed := conns.state()
			if open == want {
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				t.Fatalf("%d connections open, want %d", open, want)
			}
		}
	}

	var clients []*grpc.ClientConn
	for range 2 {
		c, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Connect()
		for s := c.GetState(); s != connectivity.Ready; s = c.GetState() {
			if !c.WaitForStateChange(ctx, s) {
				t.Fatalf("client never connected (state %v)", s)
			}
		}
		clients = append(clients, c)
	}
	waitOpen(2)

	// With connections open, waitIdle gives up at its limit.
	conns.waitIdle(time.Millisecond)
	if open, _ := conns.state(); open != 2 {
		t.Fatalf("%d connections open after waitIdle timed out, want 2", open)
	}

	clients[0].Close()
	waitOpen(1)
	closed := make(chan error, 1)
	go func() { closed <- clients[1].Close() }()
	conns.waitIdle(time.Minute)
	<-closed
	if open, _ := conns.state(); open != 0 {
		t.Fatalf("waitIdle returned with %d connections open", open)
	}
}
