package host

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// The listener counts accepted connections until gRPC closes them, and
// hands out the *net.UnixConn itself (gRPC pools read buffers only then).
func TestTrackingListenerCountsOpenConnections(t *testing.T) {
	dir := ShortTempDir(t)
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l := &trackingListener{UnixListener: lis}
	defer l.Close()

	var server []net.Conn
	for range 2 {
		client, err := net.Dial("unix", lis.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(*net.UnixConn); !ok {
			t.Fatalf("Accept returned a %T, want the *net.UnixConn itself", c)
		}
		server = append(server, c)
	}
	if n := l.open(); n != 2 {
		t.Fatalf("open() = %d, want 2", n)
	}

	start := time.Now()
	l.waitIdle(30 * time.Millisecond)
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Fatalf("waitIdle returned after %v with connections open; want it to wait its full time", waited)
	}

	server[0].Close()
	if n := l.open(); n != 1 {
		t.Fatalf("open() after one close = %d, want 1", n)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		time.Sleep(10 * time.Millisecond)
		server[1].Close()
	}()
	start = time.Now()
	l.waitIdle(10 * time.Second)
	<-closed
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("waitIdle took %v after the last connection closed", waited)
	}
	if n := l.open(); n != 0 {
		t.Fatalf("open() = %d, want 0", n)
	}
}
