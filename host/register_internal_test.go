package host

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// countingKubelet counts Register calls, as the kubelet's own metric does
// (before it dials the plugin back).
type countingKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	calls atomic.Int32
}

func (k *countingKubelet) Register(context.Context, *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.calls.Add(1)
	return &pluginapi.Empty{}, nil
}

// A kubelet that starts wipes our socket before it creates kubelet.sock.
// Registering the wiped socket would make the real kubelet dial it for
// 10 s and count a failed registration: register refuses to, and says the
// socket is gone so the plugin starts a new session at once.
func TestRegisterRefusesAWipedSocket(t *testing.T) {
	dir, p, s := newSession(t)

	// The kubelet starts: wipe, then listen.
	if err := os.Remove(p.socketPath); err != nil {
		t.Fatal(err)
	}
	kubelet, _ := startCountingKubelet(t, filepath.Join(dir, kubeletSocketName))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.register(ctx, s); !errors.Is(err, errSocketRemoved) {
		t.Fatalf("register with our socket wiped: %v, want errSocketRemoved", err)
	}
	if n := kubelet.calls.Load(); n != 0 {
		t.Fatalf("the kubelet got %d Register calls for a socket that is gone, want 0", n)
	}
	if !immediate(errSocketRemoved) {
		t.Fatal("errSocketRemoved must start a new session at once")
	}

	// With a fresh socket it registers.
	p.stopSession(s, false, 0)
	s = startSession(t, p)
	if err := p.register(ctx, s); err != nil || kubelet.calls.Load() != 1 {
		t.Fatalf("register with a fresh socket: %v, %d calls; want nil, 1", err, kubelet.calls.Load())
	}
}

// startCountingKubelet serves the registration API on path until the
// returned stop is called (or the test ends).
func startCountingKubelet(t *testing.T, path string) (*countingKubelet, func()) {
	t.Helper()
	k := &countingKubelet{}
	return k, serveRegistration(t, path, k)
}

// serveRegistration serves k on a unix socket at path until the returned
// stop is called (or the test ends); stop waits for the server to end.
func serveRegistration(t *testing.T, path string, k pluginapi.RegistrationServer) func() {
	t.Helper()
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, k)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	stop := func() { srv.Stop(); <-served }
	t.Cleanup(stop)
	return stop
}

// newSession starts a session for a one-device resource in a fresh
// device-plugin dir, stopped when the test ends.
func newSession(t *testing.T) (dir string, p *Plugin, s *session) {
	t.Helper()
	dir = ShortTempDir(t)
	m, err := manifest.Parse([]byte("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - {name: example.com/w, count: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{DevicePluginDir: dir})
	t.Cleanup(h.closeRegistrationConn)
	p = newPlugin(h, m.Resources[0])
	return dir, p, startSession(t, p)
}

// startSession starts a session of p, stopped when the test ends unless
// the test stopped it itself.
func startSession(t *testing.T, p *Plugin) *session {
	t.Helper()
	s, err := p.startSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-s.ending: // stopped already
		default:
			p.stopSession(s, true, 0)
		}
	})
	return s
}

// A Register goes to the kubelet that accepted the connection or fails: a
// kubelet restarted in between (which wiped our socket after we checked
// it) never gets it.
func TestRegistrationNeverReachesANewerKubelet(t *testing.T) {
	dir := ShortTempDir(t)
	path := filepath.Join(dir, kubeletSocketName)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	_, stopFirst := startCountingKubelet(t, path)
	id, err := statID(path)
	if err != nil {
		t.Fatal(err)
	}
	h := New(Config{DevicePluginDir: dir})
	rc, err := h.acquireRegistrationConn(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer h.closeRegistrationConn()
	defer h.releaseRegistrationConn(rc)
	// The connection handshakes at once, before any Register: a kubelet
	// stopping meanwhile is not kept waiting for our preface.
	for s := rc.conn.GetState(); s != connectivity.Ready; s = rc.conn.GetState() {
		if !rc.conn.WaitForStateChange(ctx, s) {
			t.Fatalf("the registration connection never became ready (last %v)", s)
		}
	}
	stopFirst() // the kubelet restarts: the old one goes, the new one wipes and listens
	os.Remove(path)
	second, _ := startCountingKubelet(t, path)
	_, err = pluginapi.NewRegistrationClient(rc.conn).Register(ctx, &pluginapi.RegisterRequest{Version: pluginapi.Version, ResourceName: "example.com/w"})
	if err == nil || second.calls.Load() != 0 {
		t.Fatalf("Register after the kubelet restarted: %v, %d calls reached the new kubelet; want an error and none", err, second.calls.Load())
	}

	// A kubelet.sock replaced between stat and connect is refused too.
	if _, err := dialKubelet(ctx, path, id); !errors.Is(err, errKubeletAbsent) {
		t.Fatalf("dial a kubelet.sock that is not the one stat saw: %v, want errKubeletAbsent", err)
	}
}

// A registration connection given up before gRPC used the connection
// under it closes that connection too: nothing of ours stays open at the
// kubelet.
func TestRetiredRegistrationConnClosesItsSocket(t *testing.T) {
	dir := ShortTempDir(t)
	path := filepath.Join(dir, kubeletSocketName)
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	id, err := statID(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := dialKubelet(ctx, path, id)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := lis.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn, err := grpc.NewClient("passthrough:///"+path, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(raw.dial))
	if err != nil {
		t.Fatal(err)
	}
	(&regConn{conn: conn, raw: raw, id: id}).close() // never used: gRPC never dialled
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("the kubelet's end of a retired, unused registration connection: read %v, want EOF (closed by us)", err)
	}
}

// blockingKubelet holds every Register call until the caller gives up.
type blockingKubelet struct {
	pluginapi.UnimplementedRegistrationServer
	called chan struct{}
}

func (k *blockingKubelet) Register(ctx context.Context, _ *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.called <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

// A plugin removed from the manifest while its Register call is under way
// has stopped; the kubelet did not refuse it.
func TestRegisterStoppedByRemovalIsNotARefusal(t *testing.T) {
	dir, p, s := newSession(t)
	k := &blockingKubelet{called: make(chan struct{}, 1)}
	serveRegistration(t, filepath.Join(dir, kubeletSocketName), k)

	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.register(ctx, s) }()
	<-k.called
	cancel(errRemoved)
	err := <-done
	if errors.Is(err, errKubeletRefused) || !errors.Is(err, context.Canceled) {
		t.Fatalf("register stopped by a removal returned %v; want context.Canceled, not a refusal", err)
	}
}
