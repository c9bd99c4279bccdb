package host

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// Allocate is the one RPC on the kubelet's path to starting a container,
// and converting rendered allocations to pluginapi structs and then
// marshalling those by reflection cost more than rendering them (for 64
// devices: ~20 µs to convert, ~28 µs to marshal, ~50 µs to render). So
// the servers answer Allocate in wire form, written straight from the
// rendered allocations, byte-compatible with what proto.Marshal writes
// (a test decodes it and compares with the typed answer).

// devicePluginService is pluginapi's service description with Allocate
// answered by allocateWire; the other methods are the generated ones.
var devicePluginService = func() grpc.ServiceDesc {
	desc := pluginapi.DevicePlugin_ServiceDesc
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Allocate" {
			desc.Methods[i].Handler = allocateHandler
		}
	}
	return desc
}()

func allocateHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	req := new(pluginapi.AllocateRequest)
	if err := dec(req); err != nil {
		return nil, err
	}
	handle := func(ctx context.Context, req any) (any, error) {
		return srv.(*service).allocateWire(ctx, req.(*pluginapi.AllocateRequest))
	}
	if interceptor == nil {
		return handle(ctx, req)
	}
	return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: pluginapi.DevicePlugin_Allocate_FullMethodName}, handle)
}

// allocateWire is Allocate answering with the AllocateResponse in wire form.
func (s *service) allocateWire(_ context.Context, req *pluginapi.AllocateRequest) (wireMessage, error) {
	start := time.Now()
	allocs, err := s.render(req)
	if err != nil {
		return nil, err
	}
	resp, err := encodeAllocateResponse(allocs)
	if err != nil {
		err = status.Errorf(codes.Internal, "%s: %v", s.p.name, err)
		s.p.host.metrics.allocationErrors.WithLabelValues(s.p.name, codes.Internal.String()).Inc()
		return nil, err
	}
	s.allocated(start)
	return resp, nil
}

// Field tags of ContainerAllocateResponse and its parts (wire type 2,
// length-delimited, except Mount.read_only, a varint).
const (
	tagContainerResponses = 1<<3 | 2 // AllocateResponse.container_responses
	tagEnvs               = 1<<3 | 2 // ContainerAllocateResponse.envs (map entries)
	tagMounts             = 2<<3 | 2
	tagDeviceSpecs        = 3<<3 | 2
	tagAnnotations        = 4<<3 | 2
	tagCDIDevices         = 5<<3 | 2
	tagMapKey             = 1<<3 | 2
	tagMapValue           = 2<<3 | 2
	tagContainerPath      = 1<<3 | 2 // Mount, DeviceSpec
	tagHostPath           = 2<<3 | 2
	tagReadOnly           = 3<<3 | 0 // Mount
	tagPermissions        = 3<<3 | 2 // DeviceSpec
	tagCDIName            = 1<<3 | 2
)

// encodeAllocateResponse writes the AllocateResponse of allocs. Strings
// must be UTF-8, as proto.Marshal requires of proto3 strings.
func encodeAllocateResponse(allocs []*manifest.Allocation) (wireMessage, error) {
	size := 0
	sizes := make([]int, len(allocs))
	for i, a := range allocs {
		n, err := containerSize(a)
		if err != nil {
			return nil, fmt.Errorf("container request %d: %w", i, err)
		}
		sizes[i] = n
		size += 1 + uvarintLen(uint64(n)) + n
	}
	b := make([]byte, 0, size)
	for i, a := range allocs {
		b = append(b, tagContainerResponses)
		b = appendUvarint(b, uint64(sizes[i]))
		b = appendContainer(b, a)
	}
	if len(b) != size {
		return nil, fmt.Errorf("encoder bug: wrote %d bytes, sized %d", len(b), size)
	}
	return b, nil
}

// containerSize is the size of one ContainerAllocateResponse's fields; it
// fails on text that is not UTF-8.
func containerSize(a *manifest.Allocation) (int, error) {
	n := 0
	for _, m := range []map[string]string{a.Envs, a.Annotations} {
		for k, v := range m {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return 0, fmt.Errorf("%q=%q is not valid UTF-8", k, v)
			}
			n += field(mapEntrySize(k, v))
		}
	}
	for _, m := range a.Mounts {
		if !utf8.ValidString(m.ContainerPath) || !utf8.ValidString(m.HostPath) {
			return 0, fmt.Errorf("mount %q:%q is not valid UTF-8", m.HostPath, m.ContainerPath)
		}
		n += field(mountSize(m))
	}
	for _, d := range a.Devices {
		if !utf8.ValidString(d.ContainerPath) || !utf8.ValidString(d.HostPath) || !utf8.ValidString(d.Permissions) {
			return 0, fmt.Errorf("device %q:%q is not valid UTF-8", d.HostPath, d.ContainerPath)
		}
		n += field(deviceSpecSize(d))
	}
	for _, name := range a.CDIDevices {
		if !utf8.ValidString(name) {
			return 0, fmt.Errorf("CDI device %q is not valid UTF-8", name)
		}
		n += field(optString(name))
	}
	return n, nil
}

func appendContainer(b []byte, a *manifest.Allocation) []byte {
	b = appendMap(b, tagEnvs, a.Envs)
	for _, m := range a.Mounts {
		b = append(b, tagMounts)
		b = appendUvarint(b, uint64(mountSize(m)))
		b = appendOptString(b, tagContainerPath, m.ContainerPath)
		b = appendOptString(b, tagHostPath, m.HostPath)
		if m.ReadOnly {
			b = append(b, tagReadOnly, 1)
		}
	}
	for _, d := range a.Devices {
		b = append(b, tagDeviceSpecs)
		b = appendUvarint(b, uint64(deviceSpecSize(d)))
		b = appendOptString(b, tagContainerPath, d.ContainerPath)
		b = appendOptString(b, tagHostPath, d.HostPath)
		b = appendOptString(b, tagPermissions, d.Permissions)
	}
	b = appendMap(b, tagAnnotations, a.Annotations)
	for _, name := range a.CDIDevices {
		b = append(b, tagCDIDevices)
		b = appendUvarint(b, uint64(optString(name)))
		b = appendOptString(b, tagCDIName, name)
	}
	return b
}

// appendMap writes a map's entries in key order, key and value always
// present, as protobuf-go writes map entries.
func appendMap(b []byte, tag byte, m map[string]string) []byte {
	if len(m) == 0 {
		return b
	}
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := m[k]
		b = append(b, tag)
		b = appendUvarint(b, uint64(mapEntrySize(k, v)))
		b = appendString(b, tagMapKey, k)
		b = appendString(b, tagMapValue, v)
	}
	return b
}

func mapEntrySize(k, v string) int { return str(k) + str(v) }

func mountSize(m manifest.Mount) int {
	n := optString(m.ContainerPath) + optString(m.HostPath)
	if m.ReadOnly {
		n += 2
	}
	return n
}

func deviceSpecSize(d manifest.DeviceNode) int {
	return optString(d.ContainerPath) + optString(d.HostPath) + optString(d.Permissions)
}

// field is the size of a length-delimited field with an n-byte body.
func field(n int) int { return 1 + uvarintLen(uint64(n)) + n }

// str is the size of a string field; optString of one that proto3 leaves
// out when empty.
func str(s string) int { return field(len(s)) }

func optString(s string) int {
	if s == "" {
		return 0
	}
	return str(s)
}

func appendString(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = appendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendOptString(b []byte, tag byte, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, tag, s)
}
