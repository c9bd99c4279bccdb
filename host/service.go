package host

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// service answers the kubelet's DevicePlugin RPCs for one session of a
// plugin from the plugin's current snapshot. Allocate is in allocate.go.
type service struct {
	pluginapi.UnimplementedDevicePluginServer
	p    *Plugin
	sess *session
}

func (s *service) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return s.p.snapshot().options, nil
}

// ListAndWatch sends the device list at once and on every change until the
// stream or the session ends. A final session sends an empty list first, so
// the kubelet drops the capacity at once instead of keeping stale devices.
func (s *service) ListAndWatch(_ *pluginapi.Empty, stream grpc.ServerStreamingServer[pluginapi.ListAndWatchResponse]) error {
	ctx := stream.Context()
	debug := s.p.log.Enabled(ctx, slog.LevelDebug)
	if debug {
		s.p.log.Debug("ListAndWatch stream opened by the kubelet")
	}
	var sent *snapshot
	for {
		snap, changed := s.p.watch()
		if sent == nil || snap != sent && !sameList(sent, snap) {
			list := deviceList(snap)
			if debug {
				s.p.log.Debug("device list sent", "devices", len(list.msg.Devices), "healthy", snap.healthy, "bytes", proto.Size(&list.msg))
			}
			err := stream.Send(&list.msg)
			list.release()
			if err != nil {
				return fmt.Errorf("send device list: %w", err)
			}
		}
		sent = snap
		select {
		case <-changed:
		case <-ctx.Done():
			if debug {
				s.p.log.Debug("ListAndWatch stream closed by the kubelet")
			}
			return nil
		case <-s.sess.ending:
			if s.sess.final.Load() {
				if err := stream.Send(&pluginapi.ListAndWatchResponse{}); err != nil {
					return fmt.Errorf("send empty device list: %w", err)
				}
				if debug {
					s.p.log.Debug("empty device list sent: the resource stops")
				}
			}
			if debug {
				s.p.log.Debug("ListAndWatch stream closed: the session ends")
			}
			return nil
		}
	}
}

// deviceList is the ListAndWatch message of snap, built at each send from
// pooled structs: at start every plugin sends at once, and kept lists would
// hold every device of every resource.
func deviceList(snap *snapshot) *pooledList {
	res := snap.res
	l := lists.Get().(*pooledList)
	l.devices = slices.Grow(l.devices[:0], len(res.IDs))[:len(res.IDs)]
	l.msg.Devices = slices.Grow(l.msg.Devices[:0], len(res.IDs))[:len(res.IDs)]
	for i, id := range res.IDs {
		d := &l.devices[i]
		*d = pluginapi.Device{ID: id, Health: pluginapi.Healthy}
		if snap.unhealthy[i] {
			d.Health = pluginapi.Unhealthy
		}
		if node, ok := res.NUMANode(i); ok {
			d.Topology = snap.topology[node]
		}
		l.msg.Devices[i] = d
	}
	return l
}

// pooledList is a ListAndWatch message whose structs are reused.
type pooledList struct {
	msg     pluginapi.ListAndWatchResponse
	devices []pluginapi.Device
}

var lists = sync.Pool{New: func() any { return new(pooledList) }}

// release returns l to the pool; gRPC has encoded it once Send returns.
func (l *pooledList) release() {
	clear(l.devices) // drop the IDs, which belong to a manifest
	clear(l.msg.Devices)
	lists.Put(l)
}

// sameList reports whether two snapshots advertise the same devices, so a
// template-only reload sends nothing on the stream.
func sameList(a, b *snapshot) bool {
	return a.res.SameDevices(b.res) && slices.Equal(a.unhealthy, b.unhealthy)
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
		s.p.log.Debug("preferred allocation", "container_request", i, "available", len(cr.AvailableDeviceIDs),
			"must_include", len(cr.MustIncludeDeviceIDs), "size", cr.AllocationSize, "preferred", manifest.ListIDs(ids, ","))
	}
	return resp, nil
}

// PreStartContainer acknowledges: virtual devices need no preparation.
func (s *service) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
