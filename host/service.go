package host

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// service answers the kubelet's DevicePlugin RPCs for one session of a
// plugin. It reads the plugin's current snapshot and holds no state of its
// own. Allocate is in allocate.go.
type service struct {
	pluginapi.UnimplementedDevicePluginServer
	p    *Plugin
	sess *session
}

func (s *service) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return s.p.snapshot().options, nil
}

// ListAndWatch sends the device list at once and again on every change. It
// returns when the stream's context ends or the session ends; a session
// that ends for good sends an empty list first, so the kubelet drops the
// capacity at once instead of keeping stale devices.
func (s *service) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	ctx := stream.Context()
	var sent *snapshot
	for {
		snap, changed := s.p.watch()
		if sent == nil || snap != sent && !sameList(sent, snap) {
			if err := stream.Send(deviceList(snap)); err != nil {
				return fmt.Errorf("send device list: %w", err)
			}
		}
		sent = snap
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		case <-s.sess.ending:
			if s.sess.final.Load() {
				if err := stream.Send(&pluginapi.ListAndWatchResponse{}); err != nil {
					return fmt.Errorf("send empty device list: %w", err)
				}
			}
			return nil
		}
	}
}

// deviceList is the ListAndWatch message of snap. It is built at each send
// rather than kept: a large host holds half a million devices, and their
// IDs are all it needs between sends.
func deviceList(snap *snapshot) *pluginapi.ListAndWatchResponse {
	res := snap.res
	devices := make([]pluginapi.Device, len(res.IDs)) // one allocation, not one per device
	list := &pluginapi.ListAndWatchResponse{Devices: make([]*pluginapi.Device, len(res.IDs))}
	for i, id := range res.IDs {
		d := &devices[i]
		d.ID, d.Health = id, pluginapi.Healthy
		if snap.unhealthy[i] {
			d.Health = pluginapi.Unhealthy
		}
		if node, ok := res.NUMANode(i); ok {
			d.Topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(node)}}}
		}
		list.Devices[i] = d
	}
	return list
}

// sameList reports whether two snapshots advertise the same devices, so a
// template-only reload sends nothing on the stream.
func sameList(a, b *snapshot) bool {
	return a.res.SameDevices(b.res) && equalBools(a.unhealthy, b.unhealthy)
}

// GetPreferredAllocation picks devices per the resource's allocation policy.
func (s *service) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	s.p.mPreferred.Inc()
	snap := s.p.snapshot()
	resp := &pluginapi.PreferredAllocationResponse{
		ContainerResponses: make([]*pluginapi.ContainerPreferredAllocationResponse, len(req.ContainerRequests)),
	}
	for i, cr := range req.ContainerRequests {
		ids, err := snap.res.Preferred(cr.AvailableDeviceIDs, cr.MustIncludeDeviceIDs, int(cr.AllocationSize))
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s: container request %d: %v", s.p.name, i, err)
		}
		resp.ContainerResponses[i] = &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids}
	}
	return resp, nil
}

// PreStartContainer acknowledges: virtual devices need no preparation.
func (s *service) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
