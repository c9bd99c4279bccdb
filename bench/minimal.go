package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// The baseline: the smallest device plugin that does the job, the way most
// plugins are written. One gRPC server per resource on its socket, register,
// send a device list built at start, answer Allocate with a response fixed
// in advance (looked up by the number of devices requested), re-register
// when kubelet.sock is created, recreate a socket that was deleted. No
// manifest, templates, validation, health, metrics, logs or backoff.
// It runs as its own process (`sdp-bench minimal`), like the host.

type minimalPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	name        string
	socket      string
	kubeletSock string
	list        *pluginapi.ListAndWatchResponse
	responses   map[int]*pluginapi.AllocateResponse

	mu        sync.Mutex // one restart at a time
	server    *grpc.Server
	kubeletID string // identity of the kubelet.sock it registered with
}

func (m *minimalPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (m *minimalPlugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	if err := stream.Send(m.list); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (m *minimalPlugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	if len(req.ContainerRequests) == 1 {
		if resp, ok := m.responses[len(req.ContainerRequests[0].DevicesIds)]; ok {
			return resp, nil
		}
	}
	return &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, len(req.ContainerRequests))}, nil
}

// restart (re)creates the socket and server, then registers.
func (m *minimalPlugin) restart() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.restartLocked()
}

// restartIfGone restarts only when the socket is missing: the plugin's own
// restarts remove it too, and those events must not loop.
func (m *minimalPlugin) restartIfGone() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := os.Lstat(m.socket); err == nil {
		return
	}
	m.restartLocked()
}

// restartIfStale restarts unless the plugin already registered with the
// kubelet.sock that exists now and its socket is in place.
func (m *minimalPlugin) restartIfStale() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := os.Lstat(m.socket); err == nil && m.kubeletID != "" && m.kubeletID == fileIdentity(m.kubeletSock) {
		return
	}
	m.restartLocked()
}

func fileIdentity(path string) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return ""
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d/%d/%d", st.Dev, st.Ino, st.Ctim.Nano())
}

func (m *minimalPlugin) restartLocked() {
	m.kubeletID = ""
	if m.server != nil {
		m.server.Stop()
	}
	_ = os.Remove(m.socket)
	lis, err := net.Listen("unix", m.socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", m.name, err)
		return
	}
	m.server = grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(m.server, m)
	go m.server.Serve(lis)
	m.register()
}

// register calls Register, retrying for a while: the kubelet may still
// hold the previous connection of this socket ("already connected"), or
// its new kubelet.sock may exist a moment before it listens.
func (m *minimalPlugin) register() {
	id := fileIdentity(m.kubeletSock)
	if id == "" {
		return // no kubelet: its kubelet.sock appearing restarts us
	}
	conn, err := grpc.NewClient("unix://"+m.kubeletSock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return
	}
	defer conn.Close()
	client := pluginapi.NewRegistrationClient(conn)
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = client.Register(ctx, &pluginapi.RegisterRequest{
			Version: pluginapi.Version, Endpoint: filepath.Base(m.socket), ResourceName: m.name,
			Options: &pluginapi.DevicePluginOptions{},
		})
		cancel()
		if err == nil {
			m.kubeletID = id
			return
		}
		if fileIdentity(m.kubeletSock) != id {
			return // another kubelet: its kubelet.sock event restarts us
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func minimalMain(args []string) int {
	fs := flag.NewFlagSet("minimal", flag.ContinueOnError)
	dir := fs.String("dir", "", "device-plugin dir (with kubelet.sock)")
	name := fs.String("name", "", "serve one resource of this name (else -resources scale resources)")
	resources := fs.Int("resources", 1, "number of resources, named as the scale manifests name them")
	devices := fs.Int("devices", 1, "devices per resource")
	idPrefix := fs.String("id-prefix", "", "device ID prefix (default: the name part of the resource, then -)")
	responsesFile := fs.String("responses", "", "JSON {devices: base64 AllocateResponse} to answer Allocate with")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// First thing: the bench may stop us as soon as the last list arrives,
	// before our own Register calls have returned.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if path := os.Getenv("SDP_MINIMAL_CPUPROFILE"); path != "" { // profiling the baseline too
		if f, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	responses := map[int]*pluginapi.AllocateResponse{}
	if *responsesFile != "" {
		data, err := os.ReadFile(*responsesFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		var raw map[string][]byte
		if err := json.Unmarshal(data, &raw); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		for k, v := range raw {
			n, _ := strconv.Atoi(k)
			resp := &pluginapi.AllocateResponse{}
			if err := proto.Unmarshal(v, resp); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			responses[n] = resp
		}
	}
	var names []string
	if *name != "" {
		names = []string{*name}
	} else {
		for i := range *resources {
			names = append(names, scaleName(i))
		}
	}
	plugins := map[string]*minimalPlugin{} // by socket file name
	var all []*minimalPlugin
	for _, n := range names {
		prefix := *idPrefix
		if prefix == "" {
			prefix = path.Base(n) + "-"
		}
		list := &pluginapi.ListAndWatchResponse{Devices: make([]*pluginapi.Device, *devices)}
		for i := range list.Devices {
			list.Devices[i] = &pluginapi.Device{ID: prefix + strconv.Itoa(i), Health: pluginapi.Healthy}
		}
		p := &minimalPlugin{
			name: n, socket: filepath.Join(*dir, manifest.SocketName(n)), kubeletSock: filepath.Join(*dir, "kubelet.sock"),
			list: list, responses: responses,
		}
		plugins[filepath.Base(p.socket)] = p
		all = append(all, p)
	}

	w, err := fsnotify.NewWatcher()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer w.Close()
	if err := w.Add(*dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Go(p.restart)
	}
	wg.Wait()

	for {
		select {
		case <-sig:
			for _, p := range all {
				p.mu.Lock()
				if p.server != nil {
					p.server.Stop()
				}
				_ = os.Remove(p.socket)
				p.mu.Unlock()
			}
			return 0
		case ev := <-w.Events:
			base := filepath.Base(ev.Name)
			switch {
			case base == "kubelet.sock" && ev.Has(fsnotify.Create):
				for _, p := range all {
					go p.restartIfStale()
				}
			case ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename):
				if p := plugins[base]; p != nil {
					go p.restartIfGone()
				}
			}
		case err := <-w.Errors:
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// scaleName names resource i of the scale manifests.
func scaleName(i int) string { return fmt.Sprintf("bench.example.com/r%04d", i) }
