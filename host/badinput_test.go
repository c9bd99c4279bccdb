package host_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// badInputManifest has a small resource with an unhealthy device and one
// with 100,000 devices (short IDs, so its device list stays under the
// ListAndWatch bound), for requests as large as the kubelet could send.
const badInputManifest = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/small
    ids: [s0, s1, s2, s3]
    unhealthy: [s3]
    env: {SMALL_IDS: '{{ join .IDs "," }}'}
  - name: example.com/huge
    count: 100000
    idTemplate: "{{ .Index }}"
    env: {HUGE_COUNT: "{{ .Count }}"}
`

// rpcDeadline is how long any single bad request may take: a hang fails the
// test instead of the whole run.
const rpcDeadline = 10 * time.Second

// maxErrorMessage bounds an error message: it travels in a gRPC trailer
// and ends up in kubelet logs and pod events.
const maxErrorMessage = 1024

func manyIDs(n int, format string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(format, i)
	}
	return ids
}

func repeated(id string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = id
	}
	return ids
}

// wantRPCError checks err has code and a bounded message naming every one
// of names.
func wantRPCError(t *testing.T, err error, code codes.Code, names ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", code)
	}
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), code)
	}
	if len(st.Message()) > maxErrorMessage {
		t.Fatalf("error message is %d bytes, want at most %d: %.200q…", len(st.Message()), maxErrorMessage, st.Message())
	}
	for _, n := range names {
		if !strings.Contains(st.Message(), n) {
			t.Errorf("error %q does not name %q", st.Message(), n)
		}
	}
}

// TestBadInputAtRuntime sends the requests a buggy or hostile kubelet
// could: each gets a clear gRPC error naming what is wrong, or a valid
// answer; never a panic (which would kill the process), never a hang.
func TestBadInputAtRuntime(t *testing.T) {
	dir := shortTempDir(t)
	k := startKubelet(t, dir)
	startHost(t, dir, mustParse(t, badInputManifest))
	waitRegistered(t, k, "example.com/small", "example.com/huge")
	small, huge := dial(t, dir, "example.com/small"), dial(t, dir, "example.com/huge")

	allocate := func(t *testing.T, c pluginapi.DevicePluginClient, reqs ...[]string) (*pluginapi.AllocateResponse, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), rpcDeadline)
		defer cancel()
		req := &pluginapi.AllocateRequest{}
		for _, ids := range reqs {
			req.ContainerRequests = append(req.ContainerRequests, &pluginapi.ContainerAllocateRequest{DevicesIds: ids})
		}
		resp, err := c.Allocate(ctx, req)
		if status.Code(err) == codes.DeadlineExceeded {
			t.Fatalf("Allocate hung for %v", rpcDeadline)
		}
		return resp, err
	}
	preferred := func(t *testing.T, c pluginapi.DevicePluginClient, available, must []string, size int32) (*pluginapi.PreferredAllocationResponse, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), rpcDeadline)
		defer cancel()
		resp, err := c.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs: available, MustIncludeDeviceIDs: must, AllocationSize: size,
			}},
		})
		if status.Code(err) == codes.DeadlineExceeded {
			t.Fatalf("GetPreferredAllocation hung for %v", rpcDeadline)
		}
		return resp, err
	}

	t.Run("allocate", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			client pluginapi.DevicePluginClient
			reqs   [][]string
			code   codes.Code
			names  []string
		}{
			{"no container requests", small, nil, codes.InvalidArgument, []string{"example.com/small", "no container requests"}},
			{"empty ID list", small, [][]string{{}}, codes.InvalidArgument, []string{"container request 0", "no device IDs"}},
			{"duplicate IDs", small, [][]string{{"s0", "s1", "s0"}}, codes.InvalidArgument, []string{"twice", "s0"}},
			{"unknown IDs", small, [][]string{{"s0", "nope", "s1"}}, codes.InvalidArgument, []string{"unknown", "nope"}},
			{"unhealthy ID", small, [][]string{{"s3"}}, codes.FailedPrecondition, []string{"unhealthy", "s3"}},
			{"bad second container", small, [][]string{{"s0"}, {"gone"}}, codes.InvalidArgument, []string{"container request 1", "gone"}},
			{"100,000 unknown IDs", small, [][]string{manyIDs(100000, "u%d")}, codes.InvalidArgument, []string{"unknown", "u0", "100000"}},
			{"100,000 copies of one ID", small, [][]string{repeated("s1", 100000)}, codes.InvalidArgument, []string{"twice", "s1"}},
			{"100,000 IDs, one unknown", huge, [][]string{append(manyIDs(99999, "%d"), "x")}, codes.InvalidArgument, []string{"unknown", `x`}},
			{"100,000 IDs, one twice", huge, [][]string{append(manyIDs(99999, "%d"), "7")}, codes.InvalidArgument, []string{"twice", "7"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := allocate(t, tc.client, tc.reqs...)
				wantRPCError(t, err, tc.code, tc.names...)
			})
		}
		t.Run("100,000 valid IDs", func(t *testing.T) {
			start := time.Now()
			resp, err := allocate(t, huge, manyIDs(100000, "%d"))
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.ContainerResponses[0].Envs["HUGE_COUNT"]; got != "100000" {
				t.Errorf("HUGE_COUNT = %q, want 100000", got)
			}
			t.Logf("Allocate of 100,000 devices answered in %v", time.Since(start).Round(time.Millisecond))
		})
	})

	t.Run("preferred", func(t *testing.T) {
		avail := []string{"s0", "s1", "s2"}
		for _, tc := range []struct {
			name      string
			client    pluginapi.DevicePluginClient
			available []string
			must      []string
			size      int32
			code      codes.Code
			names     []string
		}{
			{"size 0", small, avail, nil, 0, codes.InvalidArgument, []string{"allocation size 0"}},
			{"negative size", small, avail, nil, -3, codes.InvalidArgument, []string{"allocation size -3"}},
			{"more than available", small, avail, nil, 4, codes.InvalidArgument, []string{"allocation size 4", "3 available"}},
			{"must-include not available", small, avail[:2], []string{"s2"}, 2, codes.InvalidArgument, []string{"must-include", "s2"}},
			{"must-include unknown", small, avail, []string{"nope"}, 1, codes.InvalidArgument, []string{"nope"}},
			{"more must-include than size", small, avail, []string{"s0", "s1"}, 1, codes.InvalidArgument, []string{"allocation size 1"}},
			{"unknown available short of the size", small, []string{"s0", "zz"}, nil, 2, codes.InvalidArgument, []string{"1 available", "zz"}},
			{"100,000 unknown available", small, manyIDs(100000, "u%d"), nil, 1, codes.InvalidArgument, []string{"0 available", "u0", "100000"}},
			{"100,000 must-include not available", huge, manyIDs(10, "%d"), manyIDs(100000, "%d")[10:], 99990, codes.InvalidArgument, []string{"must-include", "10", "99990"}},
			{"size larger than 100,000 available", huge, manyIDs(100000, "%d"), nil, 100001, codes.InvalidArgument, []string{"allocation size 100001"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := preferred(t, tc.client, tc.available, tc.must, tc.size)
				wantRPCError(t, err, tc.code, tc.names...)
			})
		}
		t.Run("unknown available left out", func(t *testing.T) {
			resp, err := preferred(t, small, []string{"zz", "s1", "s0"}, nil, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.ContainerResponses[0].DeviceIDs; fmt.Sprint(got) != "[s0]" {
				t.Errorf("preferred = %v, want [s0]", got)
			}
		})
		t.Run("duplicates in available and must-include", func(t *testing.T) {
			resp, err := preferred(t, small, []string{"s2", "s0", "s2", "s0"}, []string{"s2", "s2"}, 2)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.ContainerResponses[0].DeviceIDs; fmt.Sprint(got) != "[s2 s0]" {
				t.Errorf("preferred = %v, want [s2 s0]", got)
			}
		})
		t.Run("no container requests", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), rpcDeadline)
			defer cancel()
			resp, err := small.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{})
			if err != nil || len(resp.ContainerResponses) != 0 {
				t.Errorf("empty request: %v, %v; want an empty answer", resp, err)
			}
		})
		t.Run("all 100,000", func(t *testing.T) {
			start := time.Now()
			resp, err := preferred(t, huge, manyIDs(100000, "%d"), manyIDs(50000, "%d"), 100000)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(resp.ContainerResponses[0].DeviceIDs); got != 100000 {
				t.Errorf("preferred %d devices, want 100000", got)
			}
			t.Logf("GetPreferredAllocation of 100,000 devices (50,000 must-include) answered in %v", time.Since(start).Round(time.Millisecond))
		})
	})

	// The plugins still serve after all that.
	if _, err := allocate(t, small, []string{"s0"}); err != nil {
		t.Fatalf("allocate after the bad requests: %v", err)
	}
}
