package host

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// service answers the kubelet's DevicePlugin RPCs for one session of a
// plugin. It reads the plugin's current snapshot and holds no state of its
// own: the kubelet owns allocation state.
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
			if err := stream.SendMsg(encodeList(snap.res, snap.unhealthy)); err != nil {
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

// Allocate answers one ContainerAllocateResponse per container request,
// rendered from the templates compiled at load time. Unknown IDs are
// InvalidArgument, unhealthy ones FailedPrecondition, each naming the IDs.
// The servers route Allocate to allocateWire (allocate.go), which answers
// the same in wire form; this typed form serves in-process callers.
func (s *service) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	start := time.Now()
	allocs, err := s.render(req)
	if err != nil {
		return nil, err
	}
	resp := &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, len(allocs))}
	for i, a := range allocs {
		resp.ContainerResponses[i] = toContainerResponse(a)
	}
	s.allocated(start)
	return resp, nil
}

// render checks and renders every container request, counting refusals.
func (s *service) render(req *pluginapi.AllocateRequest) ([]*manifest.Allocation, error) {
	allocs, err := allocate(s.p.snapshot(), s.p.host.cfg.NodeName, req)
	if err != nil {
		s.refused(err)
	}
	return allocs, err
}

// refused counts and logs an Allocate that failed with a status error.
func (s *service) refused(err error) {
	s.p.host.metrics.allocationErrors.WithLabelValues(s.p.name, status.Code(err).String()).Inc()
	s.p.log.Debug("allocate refused", "err", err)
}

// allocated counts an answered Allocate and its latency.
func (s *service) allocated(start time.Time) {
	s.p.mAllocations.Inc()
	s.p.host.metrics.allocateSeconds.Observe(time.Since(start).Seconds())
}

func allocate(snap *snapshot, node string, req *pluginapi.AllocateRequest) ([]*manifest.Allocation, error) {
	res := snap.res
	if len(req.ContainerRequests) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "%s: the request has no container requests", res.Name)
	}
	allocs := make([]*manifest.Allocation, len(req.ContainerRequests))
	for i, cr := range req.ContainerRequests {
		if err := checkIDs(snap, cr.DevicesIds); err != nil {
			return nil, status.Errorf(status.Code(err), "%s: container request %d: %s", res.Name, i, status.Convert(err).Message())
		}
		alloc, err := res.Render(cr.DevicesIds, node)
		if err != nil {
			var unknown *manifest.UnknownIDsError
			if errors.As(err, &unknown) {
				return nil, status.Errorf(codes.InvalidArgument, "%s: container request %d: %v", res.Name, i, err)
			}
			return nil, status.Errorf(codes.Internal, "%s: container request %d: %v", res.Name, i, err)
		}
		allocs[i] = alloc
	}
	return allocs, nil
}

// checkedPositions appends to positions those of ids in the resource's
// device list, ascending, when every ID is a healthy device requested
// once; otherwise it returns checkIDs' error naming what is wrong. The
// usual request passes with one lookup per ID and a sort of a few ints.
func checkedPositions(snap *snapshot, ids []string, positions []int) ([]int, error) {
	ok := len(ids) > 0
	for _, id := range ids {
		i := snap.res.Position(id)
		if i < 0 || snap.unhealthy[i] {
			ok = false
			break
		}
		positions = append(positions, i)
	}
	if ok {
		slices.Sort(positions)
		for k := 1; k < len(positions); k++ {
			if positions[k] == positions[k-1] {
				ok = false
				break
			}
		}
	}
	if ok {
		return positions, nil
	}
	if err := checkIDs(snap, ids); err != nil {
		return positions, err
	}
	// checkIDs refuses exactly what is refused above.
	return positions, status.Errorf(codes.Internal, "%d device IDs refused without a reason", len(ids))
}

// checkIDs refuses empty, duplicate, unknown and unhealthy device IDs,
// naming them.
func checkIDs(snap *snapshot, ids []string) error {
	res := snap.res
	if len(ids) == 0 {
		return status.Error(codes.InvalidArgument, "no device IDs")
	}
	// More IDs than devices means unknown or repeated ones: name them, not
	// only the count.
	var unknown, unhealthy, dup []string
	seen := make(map[int]int, min(len(ids), len(res.IDs))) // position -> times requested
	for _, id := range ids {
		i := res.Position(id)
		switch {
		case i < 0:
			unknown = append(unknown, id)
			continue
		case seen[i] == 1:
			dup = append(dup, id) // each repeated ID once, however often it repeats
		case seen[i] == 0 && snap.unhealthy[i]:
			unhealthy = append(unhealthy, id)
		}
		seen[i]++
	}
	tooMany := ""
	if len(ids) > len(res.IDs) {
		tooMany = fmt.Sprintf("%d device IDs requested; the resource has %d devices: ", len(ids), len(res.IDs))
	}
	switch {
	case len(unknown) > 0:
		return status.Errorf(codes.InvalidArgument, "%sunknown device IDs %s", tooMany, listIDs(unknown))
	case len(dup) > 0:
		return status.Errorf(codes.InvalidArgument, "%sdevice IDs requested twice: %s", tooMany, listIDs(dup))
	case len(unhealthy) > 0:
		return status.Errorf(codes.FailedPrecondition, "unhealthy device IDs %s", listIDs(unhealthy))
	}
	return nil
}

// listIDs names IDs in an error, at most a handful.
func listIDs(ids []string) string {
	const show = 8
	if len(ids) <= show {
		return strings.Join(ids, ", ")
	}
	return fmt.Sprintf("%s, … (%d in all)", strings.Join(ids[:show], ", "), len(ids))
}

func toContainerResponse(a *manifest.Allocation) *pluginapi.ContainerAllocateResponse {
	r := &pluginapi.ContainerAllocateResponse{Envs: a.Envs, Annotations: a.Annotations}
	if len(a.Mounts) > 0 {
		mounts := make([]pluginapi.Mount, len(a.Mounts))
		r.Mounts = make([]*pluginapi.Mount, len(a.Mounts))
		for i, m := range a.Mounts {
			mounts[i].ContainerPath, mounts[i].HostPath, mounts[i].ReadOnly = m.ContainerPath, m.HostPath, m.ReadOnly
			r.Mounts[i] = &mounts[i]
		}
	}
	if len(a.Devices) > 0 {
		devs := make([]pluginapi.DeviceSpec, len(a.Devices))
		r.Devices = make([]*pluginapi.DeviceSpec, len(a.Devices))
		for i, d := range a.Devices {
			devs[i].ContainerPath, devs[i].HostPath, devs[i].Permissions = d.ContainerPath, d.HostPath, d.Permissions
			r.Devices[i] = &devs[i]
		}
	}
	if len(a.CDIDevices) > 0 {
		cdi := make([]pluginapi.CDIDevice, len(a.CDIDevices))
		r.CdiDevices = make([]*pluginapi.CDIDevice, len(a.CDIDevices))
		for i, name := range a.CDIDevices {
			cdi[i].Name = name
			r.CdiDevices[i] = &cdi[i]
		}
	}
	return r
}

// PreStartContainer acknowledges: virtual devices need no preparation.
func (s *service) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
