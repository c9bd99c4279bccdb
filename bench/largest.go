package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/host"
	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/manifest"
)

// idShape is a family of device IDs.
type idShape struct {
	label    string
	template string // idTemplate
	id       func(i int) string
	topology bool
}

var idShapes = []idShape{
	{"fpga-N (fpga-0 … fpga-99999)", "fpga-{{ .Index }}", func(i int) string { return fmt.Sprintf("fpga-%d", i) }, false},
	{"fpga-N with NUMA topology", "fpga-{{ .Index }}", func(i int) string { return fmt.Sprintf("fpga-%d", i) }, true},
	{"63-character IDs", `{{ printf "dev-%059d" .Index }}`, func(i int) string { return fmt.Sprintf("dev-%059d", i) }, false},
}

// largest: the largest device count per resource whose ListAndWatch message
// a client configured like the kubelet's (grpc-go's default 4 MiB receive
// limit) accepts, found by bisection over a real gRPC stream on a unix
// socket; the largest count validation accepts; and the real host at that
// count, received by the kubelet-like client.
func (b *bench) largest() error {
	dir, err := tempDir("sdpb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := startListServer(filepath.Join(dir, "list.sock"))
	if err != nil {
		return err
	}
	defer srv.stop()

	b.section("Largest resource", "Kubelet limit: the largest device count whose ListAndWatch message a client dialled exactly like the kubelet's "+
		"(grpc.DialContext with WithBlock/WithAuthority/insecure, no call options: grpc-go's default 4 MiB receive limit) receives, bisected over a "+
		"real stream on a unix socket; with every device Healthy and, the worst case, Unhealthy. Validation bound: the largest count "+
		"`manifest.Parse` with `host.CheckDeviceList` accepts (it sizes the message with every device Unhealthy against `MaxListAndWatchBytes`). Host at bound: the real binary "+
		"serving that count, received in full by the kubelet-like client. The kubelet's own client code runs in `e2e/` (another module); this bench "+
		"copies its dial options.")
	fmt.Fprintln(b.out, "| device IDs | kubelet limit, all Healthy | kubelet limit, all Unhealthy | validation bound | bound / limit (Unhealthy) | host at bound: kubelet received | bound + 1 refused with |")
	fmt.Fprintln(b.out, "| --- | ---: | ---: | ---: | ---: | --- | --- |")
	for _, shape := range idShapes {
		healthy, err := bisect(func(n int) (bool, error) { return srv.accepted(deviceList(shape, n, pluginapi.Healthy)) })
		if err != nil {
			return err
		}
		unhealthy, err := bisect(func(n int) (bool, error) { return srv.accepted(deviceList(shape, n, pluginapi.Unhealthy)) })
		if err != nil {
			return err
		}
		bound, err := bisect(func(n int) (bool, error) {
			_, err := manifest.Parse([]byte(largestManifest(shape, n, false)), host.CheckDeviceList)
			return err == nil, nil
		})
		if err != nil {
			return err
		}
		// The real host at the bound, every device unhealthy: the worst case.
		received, err := b.hostServes(shape, bound)
		if err != nil {
			return err
		}
		refusal, err := b.validateRefusal(dir, shape, bound+1)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.out, "| %s | %d | %d | %d | %.2f | %s | %s |\n", shape.label, healthy, unhealthy, bound, float64(bound)/float64(unhealthy), received, refusal)
		f := figure{Section: "largest", Name: "largest resource, validation bound, " + shape.label, Unit: "devices",
			Value: float64(bound), Baseline: float64(unhealthy), BaseName: "kubelet client limit, all Unhealthy, measured",
			Ratio: float64(bound) / float64(unhealthy), Rounds: 1}
		if !shape.topology && strings.HasPrefix(shape.label, "fpga") {
			f = f.withGoal("≥ 50,000", bound >= 50000)
		}
		b.Figures = append(b.Figures, f)
	}
	fmt.Fprintln(b.out)
	return nil
}

func deviceList(shape idShape, n int, health string) *pluginapi.ListAndWatchResponse {
	devs := make([]pluginapi.Device, n)
	list := &pluginapi.ListAndWatchResponse{Devices: make([]*pluginapi.Device, n)}
	var topo *pluginapi.TopologyInfo
	if shape.topology {
		topo = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: 1}}}
	}
	for i := range devs {
		devs[i].ID, devs[i].Health, devs[i].Topology = shape.id(i), health, topo
		list.Devices[i] = &devs[i]
	}
	return list
}

func largestManifest(shape idShape, n int, allUnhealthy bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/big\n    count: %d\n    idTemplate: '%s'\n", n, shape.template)
	if shape.topology {
		b.WriteString("    topology: {numaNodes: 1}\n")
	}
	if allUnhealthy {
		b.WriteString("    unhealthy: [")
		for i := range n {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(shape.id(i))
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// bisect finds the largest n ≥ 1 with ok(n), assuming ok is monotone:
// doubling until it fails, then bisection.
func bisect(ok func(n int) (bool, error)) (int, error) {
	if good, err := ok(1); err != nil || !good {
		return 0, errors.Join(err, errors.New("not even 1 device fits"))
	}
	lo, hi := 1, 2 // ok(lo); hi unknown until tried
	for {
		good, err := ok(hi)
		if err != nil {
			return 0, err
		}
		if !good {
			break
		}
		if lo, hi = hi, hi*2; hi > 1<<24 {
			return 0, fmt.Errorf("%d devices still fit", lo)
		}
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		good, err := ok(mid)
		if err != nil {
			return 0, err
		}
		if good {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// hostServes runs the host binary with n devices, every one listed as
// unhealthy, and reports what the kubelet-like client received.
func (b *bench) hostServes(shape idShape, n int) (string, error) {
	k, dir, done, err := startKubeletInTempDir()
	if err != nil {
		return "", err
	}
	defer done()
	manifestPath := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(manifestPath, []byte(largestManifest(shape, n, true)), 0o644); err != nil {
		return "", err
	}
	p, err := b.startHost("largest", dir, manifestPath)
	if err != nil {
		return "", err
	}
	defer p.stop(10 * time.Second)
	if _, err := waitAllListed(k, []string{"example.com/big"}, 60*time.Second); err != nil {
		return "", fmt.Errorf("host with %d devices: %w (last stream error: %v)", n, err, k.Record("example.com/big").StreamErr)
	}
	got := len(k.Devices("example.com/big"))
	if got != n {
		return "", fmt.Errorf("host with %d devices: the kubelet client got %d", n, got)
	}
	return fmt.Sprintf("all %d, every one Unhealthy", got), nil
}

// validateRefusal runs `simple-device-plugin validate` on n devices and
// returns its message, which must name the kubelet's limit.
func (b *bench) validateRefusal(dir string, shape idShape, n int) (string, error) {
	path := filepath.Join(dir, "over.yaml")
	if err := os.WriteFile(path, []byte(largestManifest(shape, n, false)), 0o644); err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(b.bin, "validate", path)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		return "", fmt.Errorf("validate accepted %d devices", n)
	}
	msg := strings.TrimSpace(stderr.String())
	if !strings.Contains(msg, "kubelet") || !strings.Contains(msg, "4.0 MiB") {
		return "", fmt.Errorf("the refusal of %d devices does not name the kubelet's limit: %s", n, msg)
	}
	msg = strings.TrimPrefix(msg, path+": ")
	return "`" + msg + "`", nil
}

// listServer serves ListAndWatch with whatever list is set, to find what
// the kubelet's client accepts.
type listServer struct {
	pluginapi.UnimplementedDevicePluginServer
	socket string
	server *grpc.Server
	served chan struct{} // closed when Serve returned
	list   atomic.Pointer[pluginapi.ListAndWatchResponse]
}

func startListServer(socket string) (*listServer, error) {
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	s := &listServer{socket: socket, server: grpc.NewServer(), served: make(chan struct{})}
	pluginapi.RegisterDevicePluginServer(s.server, s)
	go func() {
		defer close(s.served)
		_ = s.server.Serve(lis)
	}()
	return s, nil
}

func (s *listServer) stop() {
	s.server.Stop()
	<-s.served
}

func (s *listServer) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	return stream.Send(s.list.Load())
}

// accepted reports whether the kubelet-like client receives list.
func (s *listServer) accepted(list *pluginapi.ListAndWatchResponse) (bool, error) {
	s.list.Store(list)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := kubeletsim.Dial(ctx, s.socket)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	stream, err := pluginapi.NewDevicePluginClient(conn).ListAndWatch(ctx, &pluginapi.Empty{})
	if err != nil {
		return false, err
	}
	got, err := stream.Recv()
	switch {
	case err == nil && len(got.Devices) == len(list.Devices):
		return true, nil
	case err == nil:
		return false, fmt.Errorf("got %d devices of %d", len(got.Devices), len(list.Devices))
	case status.Code(err) == codes.ResourceExhausted:
		return false, nil
	}
	return false, fmt.Errorf("%d devices (%d bytes): %w", len(list.Devices), proto.Size(list), err)
}
