package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// Allocate renders each container request from the resource's templates.
// Nothing is stored: the kubelet owns allocation state.
func (s *service) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	start := time.Now()
	resp, err := allocate(s.p.snapshot(), s.p.host.cfg.NodeName, req)
	if err != nil {
		s.p.host.metrics.allocationErrors.WithLabelValues(s.p.name, status.Code(err).String()).Inc()
		s.p.log.Debug("allocate refused", "err", err)
		return nil, err
	}
	s.p.mAllocations.Inc()
	if w := s.p.host.podRes; w != nil {
		w.Kick() // the pod shows in the kubelet's PodResources answer once this returns
	}
	s.p.host.metrics.allocateSeconds.Observe(time.Since(start).Seconds())
	if s.p.log.Enabled(ctx, slog.LevelDebug) {
		logAllocation(s.p.log, req, resp)
	}
	return resp, nil
}

// logAllocation writes a debug line per container request: the devices
// asked for and how much the answer holds.
func logAllocation(log *slog.Logger, req *pluginapi.AllocateRequest, resp *pluginapi.AllocateResponse) {
	for i, cr := range req.ContainerRequests {
		a := resp.ContainerResponses[i]
		log.Debug("allocated", "container_request", i, "devices", manifest.ListIDs(cr.DevicesIds, ","),
			"envs", len(a.Envs), "annotations", len(a.Annotations), "mounts", len(a.Mounts), "device_nodes", len(a.Devices), "cdi_devices", len(a.CdiDevices))
	}
}

// allocate answers req from snap. Errors are gRPC status errors naming the
// resource, the container request and the device IDs.
func allocate(snap *snapshot, node string, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	res := snap.res
	if len(req.ContainerRequests) == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "%s: the request has no container requests", res.Name)
	}
	resp := &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, len(req.ContainerRequests))}
	for i, cr := range req.ContainerRequests {
		devices, err := checkIDs(snap, cr.DevicesIds)
		if err != nil {
			return nil, status.Errorf(status.Code(err), "%s: container request %d: %s", res.Name, i, status.Convert(err).Message())
		}
		a, err := res.Render(devices, node)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "%s: container request %d: %v", res.Name, i, err)
		}
		resp.ContainerResponses[i] = containerResponse(a)
	}
	return resp, nil
}

// containerResponse is a rendered allocation in the kubelet's types.
func containerResponse(a *manifest.Allocation) *pluginapi.ContainerAllocateResponse {
	return &pluginapi.ContainerAllocateResponse{
		Envs:        a.Envs,
		Annotations: a.Annotations,
		Mounts: pointers(a.Mounts, func(out *pluginapi.Mount, m manifest.Mount) {
			out.ContainerPath, out.HostPath, out.ReadOnly = m.ContainerPath, m.HostPath, m.ReadOnly
		}),
		Devices: pointers(a.Devices, func(out *pluginapi.DeviceSpec, d manifest.DeviceNode) {
			out.ContainerPath, out.HostPath, out.Permissions = d.ContainerPath, d.HostPath, d.Permissions
		}),
		CdiDevices: pointers(a.CDIDevices, func(out *pluginapi.CDIDevice, name string) { out.Name = name }),
	}
}

// pointers fills one array from in and points into it (nil if in is
// empty): one allocation per list rather than one per struct.
func pointers[T, U any](in []T, fill func(*U, T)) []*U {
	if len(in) == 0 {
		return nil
	}
	vals := make([]U, len(in))
	out := make([]*U, len(in))
	for i, v := range in {
		fill(&vals[i], v)
		out[i] = &vals[i]
	}
	return out
}

// checkIDs refuses empty, duplicate, unknown and unhealthy device IDs,
// naming them, and returns the devices' positions in manifest order.
func checkIDs(snap *snapshot, ids []string) ([]int, error) {
	res := snap.res
	if len(ids) == 0 {
		return nil, status.Error(codes.InvalidArgument, "no device IDs")
	}
	// More IDs than devices means unknown or repeated ones: say so too.
	tooMany := ""
	if len(ids) > len(res.IDs) {
		has := fmt.Sprintf("%d devices", len(res.IDs))
		if len(res.IDs) == 1 {
			has = "1 device"
		}
		tooMany = fmt.Sprintf("%d device IDs requested; the resource has %s: ", len(ids), has)
	}
	devices, err := res.Positions(ids)
	if unknown, ok := errors.AsType[*manifest.UnknownIDsError](err); ok {
		return nil, status.Errorf(codes.InvalidArgument, "%sunknown device IDs %s", tooMany, manifest.ListIDs(unknown.IDs, ", "))
	} else if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// In manifest order, repeated devices are next to each other.
	slices.Sort(devices)
	var dup, unhealthy []string
	for k, i := range devices {
		switch {
		case k > 0 && devices[k-1] == i:
			if k == 1 || devices[k-2] != i {
				dup = append(dup, res.IDs[i]) // each repeated ID once, however often it repeats
			}
		case snap.unhealthy[i]:
			unhealthy = append(unhealthy, res.IDs[i])
		}
	}
	switch {
	case len(dup) > 0:
		return nil, status.Errorf(codes.InvalidArgument, "%sdevice IDs requested twice: %s", tooMany, manifest.ListIDs(dup, ", "))
	case len(unhealthy) > 0:
		return nil, status.Errorf(codes.FailedPrecondition, "unhealthy device IDs %s", manifest.ListIDs(unhealthy, ", "))
	}
	return devices, nil
}
