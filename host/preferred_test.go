package host_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// The kubelet fails a pod's admission when GetPreferredAllocation fails,
// and it learns of a reload only from the ListAndWatch update: a pod
// admitted in between lists devices the resource no longer has. The host
// answers from the devices it has instead of refusing; what no answer can
// satisfy (an unknown must-include device, too few devices left) is still
// InvalidArgument, as Allocate would be.
func TestPreferredAllocationLeavesOutRemovedDevices(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, mustParse(t, threeResources))
	waitRegistered(t, k, "example.com/a")
	client := dial(t, dir, "example.com/a")
	before := []string{"a-3", "a-0", "a-2", "a-1"} // what the kubelet had

	if _, err := rh.Apply(mustParse(t, replaceAll(threeResources, "count: 4", "count: 2"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "a's new device list", func() bool { return len(k.Devices("example.com/a")) == 2 })

	preferred := func(available, must []string, size int32) ([]string, error) {
		resp, err := client.GetPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs: available, MustIncludeDeviceIDs: must, AllocationSize: size,
			}},
		})
		if err != nil {
			return nil, err
		}
		return resp.ContainerResponses[0].DeviceIDs, nil
	}
	got, err := preferred(before, nil, 2)
	if err != nil || !slices.Equal(got, []string{"a-0", "a-1"}) {
		t.Errorf("preferred 2 of %v after a-2, a-3 were removed: %v, %v; want [a-0 a-1]", before, got, err)
	}
	got, err = preferred(before, []string{"a-1"}, 1)
	if err != nil || !slices.Equal(got, []string{"a-1"}) {
		t.Errorf("preferred with must-include a-1: %v, %v; want [a-1]", got, err)
	}
	for _, tc := range []struct {
		name string
		must []string
		size int32
	}{
		{"an unknown must-include device", []string{"a-3"}, 1},
		{"more than the devices left", nil, 3},
	} {
		if _, err := preferred(before, tc.must, tc.size); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: error %v, want InvalidArgument", tc.name, err)
		}
	}
}
