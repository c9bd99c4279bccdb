package kubeletsim

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// hangTimeout bounds every wait; everything here takes milliseconds, so
// it only turns a hang into a failure.
const hangTimeout = time.Minute

const resource = "example.com/fpga"

// shortDir is a temp dir with a short path: unix socket paths are limited
// to 108 bytes, which t.TempDir's names can exceed.
func shortDir(t *testing.T) string {
	t.Helper()
	parent := ""
	if len(os.TempDir()) > 40 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "ksim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	t.Cleanup(cancel)
	return ctx
}

// plugin is a device plugin serving two devices on a socket, and the
// plugin watcher's Registration API on the same socket.
type plugin struct {
	pluginapi.UnimplementedDevicePluginServer
	registerapi.UnimplementedRegistrationServer
	socket string
	server *grpc.Server
	served chan struct{}
	status chan *registerapi.RegistrationStatus // what the watcher reported
	ended  chan struct{}                        // one value per ListAndWatch stream that ended
}

var devices = []*pluginapi.Device{{ID: "fpga-0", Health: pluginapi.Healthy}, {ID: "fpga-1", Health: pluginapi.Unhealthy}}

func startPlugin(t *testing.T, dir string) *plugin {
	t.Helper()
	p := &plugin{
		socket: filepath.Join(dir, "fpga.sock"),
		// Stop waits for the handlers, so none outlives the test.
		server: grpc.NewServer(grpc.WaitForHandlers(true)),
		served: make(chan struct{}),
		status: make(chan *registerapi.RegistrationStatus, 1),
		ended:  make(chan struct{}, 10),
	}
	lis, err := net.Listen("unix", p.socket)
	if err != nil {
		t.Fatal(err)
	}
	pluginapi.RegisterDevicePluginServer(p.server, p)
	registerapi.RegisterRegistrationServer(p.server, p)
	go func() {
		defer close(p.served)
		_ = p.server.Serve(lis)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *plugin) stop() {
	p.server.Stop()
	<-p.served
}

func (p *plugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{PreStartRequired: true}, nil
}

func (p *plugin) ListAndWatch(_ *pluginapi.Empty, s grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	defer func() { p.ended <- struct{}{} }()
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: devices}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	ids := req.ContainerRequests[0].DevicesIds
	return &pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{
		{Envs: map[string]string{"FPGA_IDS": strings.Join(ids, ",")}},
	}}, nil
}

func (p *plugin) GetInfo(context.Context, *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	return &registerapi.PluginInfo{Type: registerapi.DevicePlugin, Name: resource, SupportedVersions: []string{pluginapi.Version}}, nil
}

func (p *plugin) NotifyRegistrationStatus(_ context.Context, s *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	p.status <- s
	return &registerapi.RegistrationStatusResponse{}, nil
}

// register calls the kubelet's Register for the plugin's socket, as a
// device plugin does.
// registered registers p's socket with k and waits until k follows it.
func registered(ctx context.Context, t *testing.T, k *Kubelet, dir string, p *plugin) {
	t.Helper()
	if err := register(ctx, dir, pluginapi.Version, filepath.Base(p.socket)); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRegistered(ctx, []string{resource}); err != nil {
		t.Fatal(err)
	}
}

func register(ctx context.Context, dir, version, endpoint string) error {
	conn, err := grpc.NewClient("unix:"+filepath.Join(dir, "kubelet.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version: version, Endpoint: endpoint, ResourceName: resource,
	})
	return err
}

func start(t *testing.T, dir string, cfg Config) *Kubelet {
	t.Helper()
	k, err := Start(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	return k
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		times   int    // registrations of the same socket
		version string // default pluginapi.Version
		refuse  error
		// After the last registration:
		wantErr       string
		wantRegs      int
		wantRefused   int
		wantConnected bool
	}{
		{name: "lazy dial", times: 1, wantRegs: 1, wantConnected: true},
		{name: "the kubelet's dial", cfg: Config{KubeletDial: true}, times: 1, wantRegs: 1, wantConnected: true},
		{name: "a connected socket again replaces the connection", times: 2, wantRegs: 2, wantConnected: true},
		{name: "a connected socket again is refused as the kubelet does", cfg: Config{KubeletDial: true, RefuseConnected: true}, times: 2,
			wantErr: "device plugin already connected", wantRegs: 1, wantRefused: 1, wantConnected: true},
		{name: "Refuse refuses", times: 1, refuse: errors.New("refused for the test"),
			wantErr: "refused for the test", wantRefused: 1},
		{name: "an unsupported version", times: 1, version: "v1alpha", wantErr: `unsupported version "v1alpha"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := shortDir(t)
			k := start(t, dir, tc.cfg)
			if tc.refuse != nil {
				k.Refuse = func(string) error { return tc.refuse }
			}
			p := startPlugin(t, dir)
			version := tc.version
			if version == "" {
				version = pluginapi.Version
			}
			ctx := waitCtx(t)
			for range tc.times - 1 {
				if err := register(ctx, dir, version, filepath.Base(p.socket)); err != nil {
					t.Fatal(err)
				}
				// The next registration finds this one connected.
				if err := k.WaitRegistered(ctx, []string{resource}); err != nil {
					t.Fatal(err)
				}
			}
			err := register(ctx, dir, version, filepath.Base(p.socket))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Register: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Register error = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.wantConnected {
				if err := k.WaitRegistered(ctx, []string{resource}); err != nil {
					t.Fatal(err)
				}
				checkEndpoint(t, k, p.socket)
			}
			r := k.Record(resource)
			if r.Registrations != tc.wantRegs || r.Refused != tc.wantRefused || (r.Endpoint != nil) != tc.wantConnected {
				t.Errorf("record: %d registrations, %d refused, connected %v; want %d, %d, %v",
					r.Registrations, r.Refused, r.Endpoint != nil, tc.wantRegs, tc.wantRefused, tc.wantConnected)
			}
		})
	}
}

// checkEndpoint checks what the kubelet holds of a connected plugin: its
// options, its device list, and a connection that allocates.
func checkEndpoint(t *testing.T, k *Kubelet, socket string) {
	t.Helper()
	ep := k.Endpoint(resource)
	if ep == nil {
		t.Fatal("no endpoint after WaitRegistered")
	}
	if ep.Socket != socket || !ep.Options.PreStartRequired {
		t.Errorf("endpoint socket %s options %v; want %s with preStartRequired", ep.Socket, ep.Options, socket)
	}
	var ids []string
	for _, d := range k.Devices(resource) {
		ids = append(ids, d.ID+"="+d.Health)
	}
	if want := []string{"fpga-0=Healthy", "fpga-1=Unhealthy"}; !slices.Equal(ids, want) {
		t.Errorf("devices = %v, want %v", ids, want)
	}
	if got := k.Lists(resource); got != k.Registrations(resource) {
		t.Errorf("%d device lists for %d registrations, want one each", got, k.Registrations(resource))
	}
	resp, err := ep.Client.Allocate(waitCtx(t), &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"fpga-0"}}},
	})
	if err != nil {
		t.Fatalf("Allocate through the kubelet's connection: %v", err)
	}
	if got := resp.ContainerResponses[0].Envs["FPGA_IDS"]; got != "fpga-0" {
		t.Errorf("Allocate env FPGA_IDS = %q, want fpga-0", got)
	}
}

// A registration whose socket nobody serves waits for it until its call
// ends, then is counted as refused, in either dial mode.
func TestRegisterOfASocketNobodyServes(t *testing.T) {
	for _, cfg := range []Config{{}, {KubeletDial: true}} {
		dir := shortDir(t)
		k := start(t, dir, cfg)
		arrived := make(chan struct{})
		k.Refuse = func(string) error { close(arrived); return nil }
		ctx, cancel := context.WithCancel(waitCtx(t))
		errc := make(chan error, 1)
		go func() { errc <- register(ctx, dir, pluginapi.Version, "nobody.sock") }()
		select {
		case <-arrived:
		case <-ctx.Done():
			t.Fatalf("%+v: the registration never reached the kubelet", cfg)
		}
		cancel() // ends the kubelet's dial, which would otherwise retry for 10 s
		if err := <-errc; err == nil {
			t.Fatalf("%+v: Register of a socket nobody serves succeeded", cfg)
		}
		if err := k.WaitFor(waitCtx(t), func(record func(string) Record) bool { return record(resource).Refused == 1 }); err != nil {
			t.Fatalf("%+v: the refusal not counted: %v", cfg, err)
		}
		if r := k.Record(resource); r.Registrations != 0 || r.Endpoint != nil {
			t.Errorf("%+v: record %+v, want no registration", cfg, r)
		}
	}
}

// A plugin whose stream ends is disconnected, as the kubelet does, and
// WaitRegistered then says what it still waits for.
func TestStreamEndDisconnects(t *testing.T) {
	dir := shortDir(t)
	k := start(t, dir, Config{})
	p := startPlugin(t, dir)
	ctx := waitCtx(t)
	registered(ctx, t, k, dir, p)
	p.stop()
	err := k.WaitFor(ctx, func(record func(string) Record) bool {
		r := record(resource)
		return r.Endpoint == nil && r.StreamErr != nil
	})
	if err != nil {
		t.Fatalf("the ended stream not noticed: %v", err)
	}
	if got := k.Devices(resource); len(got) != len(devices) {
		t.Errorf("devices after the stream ended = %v, want the last list kept", got)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	err = k.WaitRegistered(done, []string{resource, "example.com/other"})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "still waiting for example.com/fpga, example.com/other") {
		t.Errorf("WaitRegistered on an ended context = %v, want context.Canceled naming both resources", err)
	}
}

// Stop ends every stream, removes kubelet.sock and refuses what comes
// later; a second Stop does nothing more.
func TestStop(t *testing.T) {
	dir := shortDir(t)
	k := start(t, dir, Config{KubeletDial: true, RefuseConnected: true})
	p := startPlugin(t, dir)
	ctx := waitCtx(t)
	registered(ctx, t, k, dir, p)
	k.Stop()
	select {
	case <-p.ended:
	case <-ctx.Done():
		t.Fatal("the plugin's ListAndWatch stream still runs after Stop")
	}
	if _, err := os.Lstat(filepath.Join(dir, "kubelet.sock")); !os.IsNotExist(err) {
		t.Errorf("kubelet.sock after Stop: %v, want it gone", err)
	}
	if k.Endpoint(resource) != nil {
		t.Error("an endpoint is still connected after Stop")
	}
	if err := register(ctx, dir, pluginapi.Version, filepath.Base(p.socket)); err == nil {
		t.Error("Register succeeded after Stop")
	}
	k.Stop()
}

// The plugin watcher's way: GetInfo on the plugin's socket, connect to
// it, and tell the plugin it is registered.
func TestRegisterFromWatcher(t *testing.T) {
	dir := shortDir(t)
	k := start(t, dir, Config{})
	p := startPlugin(t, dir)
	ctx := waitCtx(t)
	if err := k.RegisterFromWatcher(ctx, p.socket); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-p.status:
		if !s.PluginRegistered || s.Error != "" {
			t.Errorf("status = %+v, want registered", s)
		}
	case <-ctx.Done():
		t.Fatal("no registration status reached the plugin")
	}
	if err := k.WaitRegistered(ctx, []string{resource}); err != nil {
		t.Fatal(err)
	}
	checkEndpoint(t, k, p.socket)
}
