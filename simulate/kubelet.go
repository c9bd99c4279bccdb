// Package simulate plays the kubelet's part against the real host over the
// real device plugin gRPC API, so a manifest can be tried without a cluster:
// a registration server on kubelet.sock that dials every plugin back, reads
// its options, follows its ListAndWatch stream, and asks it for preferred
// allocations and allocations as the kubelet would.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// Kubelet is a stand-in for the kubelet's device manager registration side.
type Kubelet struct {
	pluginapi.UnimplementedRegistrationServer
	// Refuse, if set, is asked before each registration; an error refuses
	// it, as the kubelet refuses a bad request (tests use it).
	Refuse func(resource string) error

	dir    string
	server *grpc.Server
	served chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // ListAndWatch followers

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	plugins map[string]*Endpoint
	regs    map[string]int // registrations by resource
}

// Endpoint is one registered plugin as the kubelet sees it.
type Endpoint struct {
	Resource string
	Socket   string
	Options  *pluginapi.DevicePluginOptions
	Client   pluginapi.DevicePluginClient

	conn    *grpc.ClientConn
	cancel  context.CancelFunc
	devices []*pluginapi.Device
	lists   int // ListAndWatch messages received
	ended   bool
}

// StartKubelet serves the registration API on dir/kubelet.sock.
func StartKubelet(dir string) (*Kubelet, error) {
	sock := filepath.Join(dir, "kubelet.sock")
	_ = os.Remove(sock)
	lis, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// WaitForHandlers: Stop waits for Register calls in flight (Stop ends
	// their contexts), so none adds an endpoint or a follower after Stop
	// has closed them.
	k := &Kubelet{
		dir:     dir,
		server:  grpc.NewServer(grpc.WaitForHandlers(true)),
		served:  make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		plugins: map[string]*Endpoint{},
		regs:    map[string]int{},
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
			return nil, err
		}
	}
	k.mu.Lock()
	k.regs[req.ResourceName]++
	k.mu.Unlock()
	if err := k.connect(ctx, req.ResourceName, filepath.Join(k.dir, req.Endpoint)); err != nil {
		return nil, err
	}
	return &pluginapi.Empty{}, nil
}

// RegisterFromWatcher does what the kubelet's plugin watcher does with a
// socket that appears in plugins_registry: GetInfo, connect to the device
// plugin endpoint it names, and report the outcome to the plugin.
func (k *Kubelet) RegisterFromWatcher(ctx context.Context, socketPath string) error {
	conn, err := grpc.NewClient("unix://"+socketPath,
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
	} else {
		k.mu.Lock()
		k.regs[info.Name]++
		k.mu.Unlock()
	}
	if _, err := reg.NotifyRegistrationStatus(ctx, status); err != nil {
		return fmt.Errorf("NotifyRegistrationStatus %s: %w", socketPath, err)
	}
	return nil
}

// connect dials a plugin back, reads its options and follows its devices.
func (k *Kubelet) connect(ctx context.Context, resource, sock string) error {
	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(4<<20)), // the kubelet's default limit
	)
	if err != nil {
		return fmt.Errorf("dial %s: %w", sock, err)
	}
	client := pluginapi.NewDevicePluginClient(conn)
	optCtx, cancelOpt := context.WithTimeout(ctx, 10*time.Second)
	defer cancelOpt()
	opts, err := client.GetDevicePluginOptions(optCtx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		conn.Close()
		return fmt.Errorf("get options from %s: %w", sock, err)
	}
	streamCtx, cancel := context.WithCancel(k.ctx)
	ep := &Endpoint{Resource: resource, Socket: sock, Options: opts, Client: client, conn: conn, cancel: cancel}

	k.mu.Lock()
	if old := k.plugins[resource]; old != nil {
		old.cancel()
		old.conn.Close()
	}
	k.plugins[resource] = ep
	k.notifyLocked()
	k.mu.Unlock()

	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.follow(streamCtx, ep)
	}()
	return nil
}

// follow reads the plugin's ListAndWatch stream until it ends.
func (k *Kubelet) follow(ctx context.Context, ep *Endpoint) {
	defer func() {
		// Like the kubelet: a plugin whose stream ended is disconnected.
		ep.conn.Close()
		k.mu.Lock()
		ep.ended = true
		k.notifyLocked()
		k.mu.Unlock()
	}()
	stream, err := ep.Client.ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return
		}
		k.mu.Lock()
		ep.devices = resp.Devices
		ep.lists++
		k.notifyLocked()
		k.mu.Unlock()
	}
}

func (k *Kubelet) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// WaitFor waits until cond (called with the lock held) holds, or ctx ends.
func (k *Kubelet) WaitFor(ctx context.Context, cond func(k *Kubelet) bool) error {
	for {
		k.mu.Lock()
		ok := cond(k)
		ch := k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// WaitRegistered waits until every named resource registered and sent its
// device list.
func (k *Kubelet) WaitRegistered(ctx context.Context, names []string) error {
	err := k.WaitFor(ctx, func(k *Kubelet) bool {
		for _, n := range names {
			ep := k.plugins[n]
			if ep == nil || ep.ended || ep.lists == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("waiting for %d resources to register: %w (registered: %v)", len(names), err, k.Registered())
	}
	return nil
}

// Endpoint returns the live endpoint of a resource, or nil.
func (k *Kubelet) Endpoint(resource string) *Endpoint {
	k.mu.Lock()
	defer k.mu.Unlock()
	ep := k.plugins[resource]
	if ep == nil || ep.ended {
		return nil
	}
	return ep
}

// Lists counts the ListAndWatch messages the live endpoint of a resource sent.
func (k *Kubelet) Lists(resource string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ep := k.plugins[resource]; ep != nil {
		return ep.lists
	}
	return 0
}

// Devices returns the last device list a resource sent.
func (k *Kubelet) Devices(resource string) []*pluginapi.Device {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ep := k.plugins[resource]; ep != nil {
		return ep.devices
	}
	return nil
}

// Registrations counts Register calls per resource.
func (k *Kubelet) Registrations(resource string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.regs[resource]
}

// Registered lists the resources with a live endpoint.
func (k *Kubelet) Registered() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for n, ep := range k.plugins {
		if !ep.ended {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Stop closes every plugin connection and the registration server.
func (k *Kubelet) Stop() {
	k.cancel()
	k.server.Stop()
	<-k.served
	k.mu.Lock()
	for _, ep := range k.plugins {
		ep.cancel()
		ep.conn.Close()
	}
	k.mu.Unlock()
	k.wg.Wait()
	_ = os.Remove(filepath.Join(k.dir, "kubelet.sock"))
}

// ErrNoEndpoint is returned for a resource that has not registered.
var ErrNoEndpoint = errors.New("resource not registered")
