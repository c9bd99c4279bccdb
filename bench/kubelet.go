package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// kubelet is the registration side of the kubelet's device manager, as far
// as a benchmark needs it, and a recorder of when things happened. It does
// what the kubelet does (pkg/kubelet/cm/devicemanager/plugin/v1beta1):
// Register dials the plugin back with the kubelet's exact dial options (so
// grpc-go's default 4 MiB receive limit), calls GetDevicePluginOptions,
// refuses a second registration of a socket that is still connected
// ("device plugin already connected"), follows ListAndWatch, and closes the
// connection when the stream ends.
type kubelet struct {
	pluginapi.UnimplementedRegistrationServer
	dir     string
	server  *grpc.Server
	served  chan struct{}
	follows sync.WaitGroup // ListAndWatch followers; stop waits for them

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced on every change
	resources map[string]*seen
	stopped   bool
}

// seen is what the kubelet saw of one resource.
type seen struct {
	registrations int       // accepted Register calls
	refused       int       // Register calls refused
	registeredAt  time.Time // arrival of the latest accepted Register
	listedAt      time.Time // first ListAndWatch message after it; zero until then
	lists         int       // ListAndWatch messages on every stream
	listAt        time.Time // arrival of the last ListAndWatch message
	devices       int       // devices in the last message
	recvErr       error     // why the last stream ended, if not cleanly

	conn   *grpc.ClientConn // the connected endpoint, nil when none
	socket string
	client pluginapi.DevicePluginClient
}

func startKubelet(dir string) (*kubelet, error) {
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	k := &kubelet{
		dir:       dir,
		server:    grpc.NewServer(),
		served:    make(chan struct{}),
		changed:   make(chan struct{}),
		resources: map[string]*seen{},
	}
	pluginapi.RegisterRegistrationServer(k.server, k)
	go func() {
		defer close(k.served)
		_ = k.server.Serve(lis)
	}()
	return k, nil
}

// startKubeletInTempDir starts a kubelet on a fresh temporary dir; done
// stops it and removes the dir.
func startKubeletInTempDir() (k *kubelet, dir string, done func(), err error) {
	if dir, err = tempDir("sdpb"); err != nil {
		return nil, "", nil, err
	}
	if k, err = startKubelet(dir); err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return k, dir, func() { k.stop(); os.RemoveAll(dir) }, nil
}

// dialLikeKubelet dials a plugin exactly as the kubelet does (dial() in
// pkg/kubelet/cm/devicemanager/plugin/v1beta1/client.go, v1.37): no call
// options, so the receive limit is grpc-go's default 4 MiB.
func dialLikeKubelet(ctx context.Context, socketPath string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// grpc.DialContext and WithBlock are deprecated; the kubelet still uses them.
	return grpc.DialContext(ctx, socketPath,
		grpc.WithAuthority("localhost"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}),
	)
}

var errAlreadyConnected = errors.New("device plugin already connected")

func (k *kubelet) Register(ctx context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	arrived := time.Now()
	if req.Version != pluginapi.Version {
		return nil, fmt.Errorf("unsupported version %q", req.Version)
	}
	sock := filepath.Join(k.dir, req.Endpoint)
	k.mu.Lock()
	s := k.get(req.ResourceName)
	if s.conn != nil && s.socket == sock {
		s.refused++
		k.notifyLocked()
		k.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", errAlreadyConnected, sock)
	}
	k.mu.Unlock()

	conn, err := dialLikeKubelet(ctx, sock)
	if err != nil {
		k.refuse(req.ResourceName)
		// Say what the socket looked like then: it tells a plugin that
		// registered a socket it no longer serves from one that hangs.
		state := "absent"
		if fi, serr := os.Lstat(sock); serr == nil {
			state = fi.Mode().String()
			if c, derr := net.Dial("unix", sock); derr != nil {
				state += ", dial: " + derr.Error()
			} else {
				c.Close()
				state += ", dials now"
			}
		}
		return nil, fmt.Errorf("dial %s (%s): %w", sock, state, err)
	}
	client := pluginapi.NewDevicePluginClient(conn)
	if _, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{}); err != nil {
		conn.Close()
		k.refuse(req.ResourceName)
		return nil, fmt.Errorf("get device plugin options: %w", err)
	}

	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		conn.Close()
		return nil, errors.New("kubelet stopping")
	}
	if s.conn != nil { // another socket path: the kubelet replaces it
		s.conn.Close()
	}
	s.registrations++
	s.registeredAt = arrived
	s.listedAt = time.Time{}
	s.conn, s.socket, s.client = conn, sock, client
	k.notifyLocked()
	// Started under the lock that stop sets stopped with, so it is counted
	// before stop waits.
	k.follows.Go(func() { k.follow(s, conn, client) })
	k.mu.Unlock()
	return &pluginapi.Empty{}, nil
}

func (k *kubelet) refuse(resource string) {
	k.mu.Lock()
	k.get(resource).refused++
	k.notifyLocked()
	k.mu.Unlock()
}

// follow reads a ListAndWatch stream until it ends, then disconnects the
// endpoint as the kubelet does.
func (k *kubelet) follow(s *seen, conn *grpc.ClientConn, client pluginapi.DevicePluginClient) {
	stream, err := client.ListAndWatch(context.Background(), &pluginapi.Empty{})
	for err == nil {
		var resp *pluginapi.ListAndWatchResponse
		resp, err = stream.Recv()
		if err != nil {
			break
		}
		now := time.Now()
		k.mu.Lock()
		if s.conn == conn && s.listedAt.IsZero() {
			s.listedAt = now
		}
		s.lists++
		s.listAt = now
		s.devices = len(resp.Devices)
		k.notifyLocked()
		k.mu.Unlock()
	}
	k.mu.Lock()
	if s.conn == conn {
		s.conn, s.client = nil, nil
		s.recvErr = err
	}
	k.notifyLocked()
	k.mu.Unlock()
	conn.Close()
}

func (k *kubelet) get(resource string) *seen {
	s := k.resources[resource]
	if s == nil {
		s = &seen{}
		k.resources[resource] = s
	}
	return s
}

func (k *kubelet) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// waitFor waits until cond, called with the lock held, holds.
func (k *kubelet) waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		ok := cond()
		ch := k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// live reports whether a resource is connected and has sent its list since
// its latest registration. The lock is held.
func (k *kubelet) live(resource string) bool {
	s := k.resources[resource]
	return s != nil && s.conn != nil && !s.listedAt.IsZero()
}

// waitAllListed waits until every resource is live and returns when the
// last of them got its first device list.
func (k *kubelet) waitAllListed(names []string, timeout time.Duration) (time.Time, error) {
	err := k.waitFor(timeout, fmt.Sprintf("%d resources registered and listed", len(names)), func() bool {
		for _, n := range names {
			if !k.live(n) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("%w (%d live)", err, k.countLive(names))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var last time.Time
	for _, n := range names {
		if t := k.resources[n].listedAt; t.After(last) {
			last = t
		}
	}
	return last, nil
}

func (k *kubelet) countLive(names []string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, name := range names {
		if k.live(name) {
			n++
		}
	}
	return n
}

// snapshot copies what was seen of a resource.
func (k *kubelet) snapshot(resource string) seen {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.resources[resource]; s != nil {
		return *s
	}
	return seen{}
}

// client returns the connection the kubelet uses for a resource.
func (k *kubelet) client(resource string) pluginapi.DevicePluginClient {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.resources[resource]; s != nil {
		return s.client
	}
	return nil
}

// stop is the kubelet going away: its server and every connection to the
// plugins close.
func (k *kubelet) stop() {
	k.mu.Lock()
	k.stopped = true
	var conns []*grpc.ClientConn
	for _, s := range k.resources {
		if s.conn != nil {
			conns = append(conns, s.conn)
		}
	}
	k.mu.Unlock()
	k.server.Stop()
	<-k.served
	for _, c := range conns {
		c.Close()
	}
	k.follows.Wait() // the closed connections end their streams
}
