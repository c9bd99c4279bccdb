package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// The largest resource: how many devices one resource can list
// before the kubelet's ListAndWatch client refuses the message (grpc-go's
// default 4 MiB receive limit; the kubelet sets no other), measured with
// the kubelet's own device manager, and where validation's bound sits
// below it. The bench (sdp-bench -only largest) finds the same limit with
// a client that copies the kubelet's dial options; this is the real code.

// listPlugin is the smallest plugin that registers a resource with the
// kubelet and lists a given device list once: the probe of the search,
// which must be able to list more devices than the host would accept.
// Not the kubelet's plugin.NewDevicePluginStub (harness_test.go): its
// ListAndWatch ignores the stream's context and never says the stream
// ended, so every refused probe would wait out the 60 s deadline.
type listPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	list  *pluginapi.ListAndWatchResponse
	ended chan struct{} // closed when the kubelet's stream ends
}

func (p *listPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

func (p *listPlugin) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	defer close(p.ended)
	if err := stream.Send(p.list); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// fpgaList is n devices fpga-0 … fpga-(n-1), all with the given health.
func fpgaList(n int, health string) *pluginapi.ListAndWatchResponse {
	devs := make([]*pluginapi.Device, n)
	for i := range devs {
		devs[i] = &pluginapi.Device{ID: "fpga-" + strconv.Itoa(i), Health: health}
	}
	return &pluginapi.ListAndWatchResponse{Devices: devs}
}

// kubeletAccepts registers a plugin listing n devices of the given health
// with the running kubelet and reports whether the kubelet took the whole
// list (its capacity for the resource became n) or dropped the stream
// (the message was over its receive limit). The kubelet is restarted
// afterwards, so one probe's devices do not weigh on the next.
func kubeletAccepts(t *testing.T, k *kubelet, probe, n int, health string) bool {
	t.Helper()
	resource := fmt.Sprintf("largest.example.com/probe-%d", probe)
	socket := socketPath(resource)
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatalf("probe %d: listen: %v", probe, err)
	}
	p := &listPlugin{list: fpgaList(n, health), ended: make(chan struct{})}
	server := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(server, p)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = server.Serve(lis)
	}()
	defer func() {
		server.Stop()
		<-served
		os.Remove(socket)
		k.restart()
	}()

	conn, err := grpc.NewClient("unix://"+pluginapi.KubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("probe %d: dial kubelet: %v", probe, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     filepath.Base(socket),
		ResourceName: resource,
	}); err != nil {
		t.Fatalf("probe %d: register %d devices: %v", probe, n, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if c := k.capacity()[resource]; c.Capacity == int64(n) {
			return true
		}
		select {
		case <-p.ended:
			// The stream ended: either the kubelet refused the message,
			// or it took it an instant before (look once more).
			return k.capacity()[resource].Capacity == int64(n)
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("probe %d: %d devices: after 60 s the kubelet neither listed them nor ended the stream (capacity %s)", probe, n, k.capacity()[resource])
	return false
}

// largestAccepted bisects for the largest n the kubelet accepts, checking
// first that lo is accepted and hi is not (so the search can fail).
func largestAccepted(t *testing.T, k *kubelet, lo, hi int, health string) (int, int) {
	t.Helper()
	probes := 0
	accepts := func(n int) bool {
		probes++
		return kubeletAccepts(t, k, probes, n, health)
	}
	if !accepts(lo) {
		t.Fatalf("the kubelet refused %d %s devices, the lower end of the search", lo, health)
	}
	if accepts(hi) {
		t.Fatalf("the kubelet accepted %d %s devices, the upper end of the search: its receive limit is not what this test assumes", hi, health)
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if accepts(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, probes
}

// validationBound is the largest count of fpga-N devices (NUMA topology
// or not) that `simple-device-plugin validate` accepts, by bisection on
// the binary itself; it also returns validate's message for one more.
func validationBound(t *testing.T, topology string) (int, string) {
	t.Helper()
	bin := hostBinary(t)
	dir := t.TempDir()
	validate := func(n int) (bool, string) {
		path := filepath.Join(dir, "manifest.yaml")
		m := fmt.Sprintf("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n  - name: example.com/fpga\n    count: %d\n    idTemplate: \"fpga-{{ .Index }}\"\n%s", n, topology)
		if err := os.WriteFile(path, []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "validate", path).CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run validate: %v", err)
		}
		return err == nil, string(out)
	}
	lo, hi := 1_000, 1_000_000
	if ok, out := validate(lo); !ok {
		t.Fatalf("validate refused %d devices:\n%s", lo, out)
	}
	if ok, _ := validate(hi); ok {
		t.Fatalf("validate accepted %d devices", hi)
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if ok, _ := validate(mid); ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	_, msg := validate(lo + 1)
	return lo, strings.TrimSpace(msg)
}

func TestLargestResourceTheKubeletAccepts(t *testing.T) {
	k := startKubelet(t)

	bound, refusal := validationBound(t, "")
	t.Logf("validation bound: %d fpga-N devices; one more: %s", bound, refusal)
	for _, want := range []string{"resources[0].count", strconv.Itoa(bound + 1), "4.0 MiB", "fewer devices"} {
		if !strings.Contains(refusal, want) {
			t.Errorf("validate's refusal of %d devices does not say %q:\n%s", bound+1, want, refusal)
		}
	}
	if bound < 50_000 {
		t.Errorf("validation allows at most %d devices per resource; the goal is at least 50,000", bound)
	}

	// Unhealthy is the longer health string: the worst case, which
	// validation sizes against. A message's smallest device (fpga-N,
	// "Healthy") takes 17 bytes, so 4 MiB / 17 is surely refused.
	limits := map[string]int{}
	for _, health := range []string{pluginapi.Unhealthy, pluginapi.Healthy} {
		start := time.Now()
		limit, probes := largestAccepted(t, k, bound, 4<<20/17, health)
		limits[health] = limit
		t.Logf("kubelet limit, every device %s: %d fpga-N devices (%d probes, %v)", health, limit, probes, time.Since(start).Round(time.Millisecond))
	}
	if bound >= limits[pluginapi.Unhealthy] {
		t.Fatalf("validation accepts %d devices, but the kubelet refuses more than %d unhealthy ones", bound, limits[pluginapi.Unhealthy])
	}
	t.Logf("largest resource: validation bound %d = %.2f of the kubelet's limit %d (all Unhealthy; %d all Healthy)",
		bound, float64(bound)/float64(limits[pluginapi.Unhealthy]), limits[pluginapi.Unhealthy], limits[pluginapi.Healthy])

	// The host itself at the bound, every device unhealthy (its health
	// check path never exists): the kubelet lists them all.
	path := writeManifest(t, fmt.Sprintf(`apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/fpga
    count: %d
    idTemplate: "fpga-{{ .Index }}"
    healthCheck:
      path: "/nonexistent/fpga/{{ .ID }}"
      interval: 1s
`, bound))
	startHost(t, path)
	want := map[string]resourceCounts{"example.com/fpga": {Capacity: int64(bound), Allocatable: 0}}
	took := eventually(t, 60*time.Second, "the kubelet to list the host's devices at the bound, all unhealthy", k.capacityIs(want))
	t.Logf("host at the bound: the kubelet lists all %d devices, every one unhealthy (after %v)", bound, took.Round(time.Millisecond))
}
