package host_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

func TestRegistersEveryResourceAndServesDeviceLists(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/a", "example.com/b", "example.com/c")

	want := map[string]map[string]string{
		"example.com/a": {"a-0": "Healthy", "a-1": "Healthy", "a-2": "Healthy", "a-3": "Healthy"},
		"example.com/b": {"x": "Healthy", "w": "Unhealthy", "z": "Healthy"},
		"example.com/c": {"c-0": "Healthy", "c-1": "Healthy"},
	}
	for name, w := range want {
		if got := healthOf(k.Devices(name)); !maps.Equal(got, w) {
			t.Errorf("%s devices = %v, want %v", name, got, w)
		}
		ep := k.Endpoint(name)
		if !ep.Options.GetPreferredAllocationAvailable || ep.Options.PreStartRequired {
			t.Errorf("%s options = %v, want GetPreferredAllocation only", name, ep.Options)
		}
		if got := k.Registrations(name); got != 1 {
			t.Errorf("%s registered %d times, want 1", name, got)
		}
	}
	waitFor(t, "ready", func() bool { ok, _ := rh.Ready(); return ok })
}

func TestAllocate(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/a", "example.com/b", "example.com/c")
	ctx := context.Background()

	resp, err := dial(t, dir, "example.com/a").Allocate(ctx, &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{"a-3", "a-1"}}, {DevicesIds: []string{"a-0"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.ContainerResponses) != 2 {
		t.Fatalf("got %d container responses, want 2", len(resp.ContainerResponses))
	}
	c0 := resp.ContainerResponses[0]
	if c0.Envs["A_IDS"] != "a-1,a-3" || c0.Envs["A_NODE"] != "node-1" {
		t.Errorf("envs = %v, want A_IDS=a-1,a-3 (manifest order) and A_NODE=node-1", c0.Envs)
	}
	if c0.Annotations["example.com/a"] != "2" {
		t.Errorf("annotations = %v", c0.Annotations)
	}
	var mounts []string
	for _, m := range c0.Mounts {
		mounts = append(mounts, m.HostPath+":"+m.ContainerPath)
	}
	if want := []string{"/srv/shared:/shared", "/srv/a-1:/dev/a/a-1", "/srv/a-3:/dev/a/a-3"}; !slices.Equal(mounts, want) {
		t.Errorf("mounts = %v, want %v", mounts, want)
	}
	if !c0.Mounts[0].ReadOnly || c0.Mounts[1].ReadOnly {
		t.Errorf("readOnly flags wrong: %v", c0.Mounts)
	}
	var devs []string
	for _, d := range c0.Devices {
		devs = append(devs, d.HostPath+":"+d.ContainerPath+":"+d.Permissions)
	}
	if want := []string{"/dev/null:/dev/a0:rw", "/dev/null:/dev/a1:rw"}; !slices.Equal(devs, want) {
		t.Errorf("devices = %v, want %v", devs, want)
	}
	var cdi []string
	for _, c := range c0.CdiDevices {
		cdi = append(cdi, c.Name)
	}
	if want := []string{"example.com/a=a-1", "example.com/a=a-3"}; !slices.Equal(cdi, want) {
		t.Errorf("cdi = %v, want %v", cdi, want)
	}
	if got := resp.ContainerResponses[1].Envs["A_IDS"]; got != "a-0" {
		t.Errorf("second container A_IDS = %q", got)
	}

	refusals := []struct {
		name     string
		resource string
		ids      []string
		code     codes.Code
		mentions string
	}{
		{"unknown", "example.com/a", []string{"a-0", "nope"}, codes.InvalidArgument, "nope"},
		{"unhealthy", "example.com/b", []string{"x", "w"}, codes.FailedPrecondition, "w"},
		{"duplicate", "example.com/a", []string{"a-1", "a-1"}, codes.InvalidArgument, "a-1"},
		{"empty", "example.com/a", nil, codes.InvalidArgument, "no device IDs"},
		{"more than exist", "example.com/c", []string{"c-0", "c-1", "c-0"}, codes.InvalidArgument, "3 device IDs"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dial(t, dir, tc.resource).Allocate(ctx, &pluginapi.AllocateRequest{
				ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: tc.ids}},
			})
			st := status.Convert(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.mentions) {
				t.Errorf("error = %v, want %v mentioning %q", err, tc.code, tc.mentions)
			}
		})
	}
}

func TestPreferredAllocationAndPreStart(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/a")
	client := dial(t, dir, "example.com/a")
	ctx := context.Background()

	resp, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs: []string{"a-3", "a-2", "a-1"}, MustIncludeDeviceIDs: []string{"a-3"}, AllocationSize: 2,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.ContainerResponses[0].DeviceIDs; !slices.Equal(got, []string{"a-3", "a-1"}) {
		t.Errorf("preferred = %v, want must-include a-3 then lowest a-1", got)
	}
	for _, size := range []int32{0, -1, 4} {
		_, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: []string{"a-0", "a-1"}, AllocationSize: size}},
		})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("size %d: error = %v, want InvalidArgument", size, err)
		}
	}
	if _, err := client.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: []string{"a-0"}}); err != nil {
		t.Errorf("PreStartContainer: %v", err)
	}
}

// ListAndWatch must return when its client goes away, not leak.
func TestListAndWatchEndsWithItsContext(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/c")
	client := dial(t, dir, "example.com/c")
	for i := 0; i < 20; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Fatalf("after cancel: %v, want Canceled", err)
		}
	}
}

func TestShutdownSendsEmptyListAndRemovesSockets(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/a", "example.com/b", "example.com/c")
	stream, err := dial(t, dir, "example.com/a").ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if first, err := stream.Recv(); err != nil || len(first.Devices) != 4 {
		t.Fatalf("first list: %v, %v", first, err)
	}
	if err := rh.stop(t); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	last, err := stream.Recv()
	if err != nil || len(last.Devices) != 0 {
		t.Errorf("last message = %v, %v; want an empty device list", last, err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after the empty list: %v, want EOF", err)
	}
	if left := sockets(t, dir); len(left) != 0 {
		t.Errorf("sockets left behind: %v", left)
	}
}
