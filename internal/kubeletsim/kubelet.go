// Package kubeletsim is a stand-in for the registration side of the
// kubelet's device manager, over the real device plugin gRPC API: a
// Registration server on kubelet.sock that dials every plugin back as the
// kubelet does, reads its options, follows its ListAndWatch stream and
// records what it saw. Callers reach a plugin through the kubelet's own
// connection to it (Endpoint), to ask for allocations as the kubelet would.
package kubeletsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// Config is what differs between the users of the stand-in; the zero
// value suits a simulation and tests.
type Config struct {
	// KubeletDial dials each plugin back exactly as the kubelet does
	// (Dial), so a benchmark measures the kubelet's own connection.
	// Without it the connection is made lazily and the first call waits
	// for the plugin; both give up after 10 s and both keep grpc-go's
	// default 4 MiB receive limit, the kubelet's.
	KubeletDial bool
	// RefuseConnected refuses a registration of a socket that is still
	// connected, as the kubelet does ("device plugin already connected"),
	// so a benchmark sees the retries a real node would cause. Without it
	// the new registration replaces the old connection.
	RefuseConnected bool
}

// Kubelet serves the Registration API and records what it sees.
type Kubelet struct {
	pluginapi.UnimplementedRegistrationServer
	// Refuse, if set, is asked before each registration; an error refuses
	// it, as the kubelet refuses a bad request. Set it before plugins
	// register.
	Refuse func(resource string) error

	dir     string
	cfg     Config
	server  *grpc.Server
	served  chan struct{}      // closed when Serve returned
	ctx     context.Context    // ends every ListAndWatch stream at Stop
	cancel  context.CancelFunc // ends ctx
	follows sync.WaitGroup     // ListAndWatch followers; Stop waits for them

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	records map[string]*Record
	stopped bool
}

// Endpoint is one connected plugin as the kubelet sees it.
type Endpoint struct {
	Resource string
	Socket   string
	Options  *pluginapi.DevicePluginOptions
	Client   pluginapi.DevicePluginClient

	conn   *grpc.ClientConn
	cancel context.CancelFunc // ends its ListAndWatch stream
}

// Start serves the Registration API on dir/kubelet.sock.
func Start(dir string, cfg Config) (*Kubelet, error) {
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &Kubelet{
		dir: dir,
		cfg: cfg,
		// Stop then waits for registrations in flight, so none adds an
		// endpoint after Stop closed them.
		server:  grpc.NewServer(grpc.WaitForHandlers(true)),
		served:  make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		records: map[string]*Record{},
	}
	pluginapi.RegisterRegistrationServer(k.server, k)
	go func() {
		defer close(k.served)
		_ = k.server.Serve(lis)
	}()
	return k, nil
}

// Register is the kubelet's Register: dial the plugin back, read its
// options, and follow its device list.
func (k *Kubelet) Register(ctx context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if req.Version != pluginapi.Version {
		return nil, fmt.Errorf("unsupported version %q", req.Version)
	}
	if k.Refuse != nil {
		if err := k.Refuse(req.ResourceName); err != nil {
			k.refused(req.ResourceName)
			return nil, err
		}
	}
	if err := k.connect(ctx, req.ResourceName, filepath.Join(k.dir, req.Endpoint)); err != nil {
		return nil, err
	}
	return &pluginapi.Empty{}, nil
}

// RegisterFromWatcher does what the kubelet's plugin watcher does with a
// socket that appears in plugins_registry: GetInfo, connect to the device
// plugin endpoint it names, and report the outcome to the plugin.
func (k *Kubelet) RegisterFromWatcher(ctx context.Context, socketPath string) error {
	conn, err := grpc.NewClient("unix:"+socketPath,
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("localhost"))
	if err != nil {
		return fmt.Errorf("dial %s: %w", socketPath, err)
	}
	defer conn.Close()
	reg := registerapi.NewRegistrationClient(conn)
	info, err := reg.GetInfo(ctx, &registerapi.InfoRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("GetInfo %s: %w", socketPath, err)
	}
	if info.Type != registerapi.DevicePlugin || !slices.Contains(info.SupportedVersions, pluginapi.Version) {
		return fmt.Errorf("%s: plugin type %q versions %v, want %s %s", socketPath, info.Type, info.SupportedVersions, registerapi.DevicePlugin, pluginapi.Version)
	}
	endpoint := info.Endpoint
	if endpoint == "" {
		endpoint = socketPath
	}
	status := &registerapi.RegistrationStatus{PluginRegistered: true}
	if err := k.connect(ctx, info.Name, endpoint); err != nil {
		status = &registerapi.RegistrationStatus{Error: err.Error()}
	}
	if _, err := reg.NotifyRegistrationStatus(ctx, status); err != nil {
		return fmt.Errorf("NotifyRegistrationStatus %s: %w", socketPath, err)
	}
	return nil
}

// connect dials a plugin back, reads its options and follows its devices.
func (k *Kubelet) connect(ctx context.Context, resource, sock string) error {
	if k.cfg.RefuseConnected {
		k.mu.Lock()
		r := k.recordLocked(resource)
		if r.Endpoint != nil && r.Endpoint.Socket == sock {
			r.Refused++
			k.notifyLocked()
			k.mu.Unlock()
			return fmt.Errorf("device plugin already connected: %s", sock)
		}
		k.mu.Unlock()
	}
	conn, err := k.dial(ctx, sock)
	if err != nil {
		k.refused(resource)
		return fmt.Errorf("dial %s (%s): %w", sock, socketState(sock), err)
	}
	client := pluginapi.NewDevicePluginClient(conn)
	optCtx, cancelOpt := context.WithTimeout(ctx, dialTimeout)
	defer cancelOpt()
	// A lazy connection is made by this first call, so it waits for it.
	opts, err := client.GetDevicePluginOptions(optCtx, &pluginapi.Empty{}, grpc.WaitForReady(!k.cfg.KubeletDial))
	if err != nil {
		conn.Close()
		k.refused(resource)
		return fmt.Errorf("get options from %s: %w", sock, err)
	}
	streamCtx, cancel := context.WithCancel(k.ctx)
	ep := &Endpoint{Resource: resource, Socket: sock, Options: opts, Client: client, conn: conn, cancel: cancel}

	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		cancel()
		conn.Close()
		return errors.New("kubelet stopping")
	}
	r := k.recordLocked(resource)
	if old := r.Endpoint; old != nil {
		old.cancel()
		old.conn.Close()
	}
	r.Registrations++
	r.ListedAt, r.Devices, r.StreamErr = time.Time{}, nil, nil
	r.Endpoint = ep
	k.notifyLocked()
	// Started under the lock Stop sets stopped with, so Stop waits for it.
	k.follows.Go(func() { k.follow(streamCtx, ep) })
	return nil
}

func (k *Kubelet) refused(resource string) {
	k.mu.Lock()
	k.recordLocked(resource).Refused++
	k.notifyLocked()
	k.mu.Unlock()
}

// follow reads a plugin's ListAndWatch stream until it ends, then
// disconnects the plugin, as the kubelet does.
func (k *Kubelet) follow(ctx context.Context, ep *Endpoint) {
	defer ep.cancel()
	stream, err := ep.Client.ListAndWatch(ctx, &pluginapi.Empty{})
	for err == nil {
		var resp *pluginapi.ListAndWatchResponse
		if resp, err = stream.Recv(); err != nil {
			break
		}
		now := time.Now()
		k.mu.Lock()
		if r := k.records[ep.Resource]; r.Endpoint == ep {
			if r.ListedAt.IsZero() {
				r.ListedAt = now
			}
			r.Lists++
			r.ListAt = now
			r.Devices = resp.Devices
			k.notifyLocked()
		}
		k.mu.Unlock()
	}
	ep.conn.Close()
	k.mu.Lock()
	if r := k.records[ep.Resource]; r.Endpoint == ep {
		r.Endpoint = nil
		r.StreamErr = err
		k.notifyLocked()
	}
	k.mu.Unlock()
}

// Stop is the kubelet going away: the registration server (and with it
// kubelet.sock) and every connection to a plugin close. Calling it again
// does nothing more.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	k.cancel()
	k.server.Stop() // closing the listener removes kubelet.sock
	<-k.served
	k.mu.Lock()
	for _, r := range k.records {
		if r.Endpoint != nil {
			r.Endpoint.conn.Close()
		}
	}
	k.mu.Unlock()
	k.follows.Wait()
}
