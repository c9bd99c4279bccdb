package host

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
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
	w := allocWorkPool.Get().(*allocWork)
	resp, err := w.answer(s.p.snapshot(), s.p.host.cfg.NodeName, req)
	w.release()
	if err != nil {
		s.refused(err)
		return nil, err
	}
	s.allocated(start)
	return resp, nil
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

// allocWork is the scratch of one Allocate: its containers' renderings
// and the positions of their devices. Pooled, so that a call allocates
// little besides its answer.
type allocWork struct {
	rendered  []manifest.Rendered
	positions []int
}

var allocWorkPool = sync.Pool{New: func() any { return new(allocWork) }}

// maxPooledText bounds the rendered text a pooled allocWork keeps: a rare
// request for thousands of devices should not pin its buffers.
const maxPooledText = 64 << 10

func (w *allocWork) release() {
	for i := range w.rendered {
		if cap(w.rendered[i].Text) > maxPooledText {
			return
		}
	}
	allocWorkPool.Put(w)
}

// answer checks and renders every container request of req and encodes
// the response. Errors are gRPC status errors naming the resource, the
// container request and the device IDs.
func (w *allocWork) answer(snap *snapshot, node string, req *pluginapi.AllocateRequest) (wireMessage, error) {
	res := snap.res
	n := len(req.ContainerRequests)
	if n == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "%s: the request has no container requests", res.Name)
	}
	w.rendered = slices.Grow(w.rendered[:0], n)[:n]
	for i, cr := range req.ContainerRequests {
		var err error
		if w.positions, err = checkedPositions(snap, cr.DevicesIds, w.positions[:0]); err != nil {
			return nil, status.Errorf(status.Code(err), "%s: container request %d: %s", res.Name, i, status.Convert(err).Message())
		}
		if err := res.RenderPositions(&w.rendered[i], w.positions, node); err != nil {
			return nil, status.Errorf(codes.Internal, "%s: container request %d: %v", res.Name, i, err)
		}
	}
	resp, err := encodeAllocateResponse(w.rendered)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%s: %v", res.Name, err)
	}
	return resp, nil
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

// encodeAllocateResponse writes the AllocateResponse of the renderings,
// one ContainerAllocateResponse each, byte for byte what proto.Marshal
// writes for it (map entries in key order). Strings must be UTF-8, as
// proto.Marshal requires of proto3 strings.
func encodeAllocateResponse(rendered []manifest.Rendered) (wireMessage, error) {
	var small [4]int
	sizes := small[:0]
	size := 0
	for i := range rendered {
		if err := checkUTF8(&rendered[i]); err != nil {
			return nil, fmt.Errorf("container request %d: %w", i, err)
		}
		n := containerSize(&rendered[i])
		sizes = append(sizes, n)
		size += field(n)
	}
	b := make([]byte, 0, size)
	for i := range rendered {
		b = append(b, tagContainerResponses)
		b = appendUvarint(b, uint64(sizes[i]))
		b = appendContainer(b, &rendered[i])
	}
	if len(b) != size {
		return nil, fmt.Errorf("encoder bug: wrote %d bytes, sized %d", len(b), size)
	}
	return b, nil
}

// containerSize is the size of one ContainerAllocateResponse's fields.
func containerSize(rd *manifest.Rendered) int {
	n := 0
	for _, kv := range rd.Envs {
		n += field(mapEntrySize(kv))
	}
	for _, m := range rd.Mounts {
		n += field(mountSize(m))
	}
	for _, d := range rd.Devices {
		n += field(deviceSpecSize(d))
	}
	for _, kv := range rd.Annotations {
		n += field(mapEntrySize(kv))
	}
	for _, name := range rd.CDIDevices {
		n += field(optSpan(name))
	}
	return n
}

func appendContainer(b []byte, rd *manifest.Rendered) []byte {
	b = appendMap(b, tagEnvs, rd, rd.Envs)
	for _, m := range rd.Mounts {
		b = append(b, tagMounts)
		b = appendUvarint(b, uint64(mountSize(m)))
		b = appendOptSpan(b, tagContainerPath, rd, m.ContainerPath)
		b = appendOptSpan(b, tagHostPath, rd, m.HostPath)
		if m.ReadOnly {
			b = append(b, tagReadOnly, 1)
		}
	}
	for _, d := range rd.Devices {
		b = append(b, tagDeviceSpecs)
		b = appendUvarint(b, uint64(deviceSpecSize(d)))
		b = appendOptSpan(b, tagContainerPath, rd, d.ContainerPath)
		b = appendOptSpan(b, tagHostPath, rd, d.HostPath)
		b = appendOptString(b, tagPermissions, d.Permissions)
	}
	b = appendMap(b, tagAnnotations, rd, rd.Annotations)
	for _, name := range rd.CDIDevices {
		b = append(b, tagCDIDevices)
		b = appendUvarint(b, uint64(optSpan(name)))
		b = appendOptSpan(b, tagCDIName, rd, name)
	}
	return b
}

// appendMap writes map entries, key and value always present, as
// protobuf-go writes map entries; the renderer lists them in key order.
func appendMap(b []byte, tag byte, rd *manifest.Rendered, entries []manifest.RenderedKV) []byte {
	for _, kv := range entries {
		b = append(b, tag)
		b = appendUvarint(b, uint64(mapEntrySize(kv)))
		b = appendString(b, tagMapKey, kv.Key)
		b = append(b, tagMapValue)
		b = appendUvarint(b, uint64(spanLen(kv.Value)))
		b = append(b, rd.Bytes(kv.Value)...)
	}
	return b
}

// checkUTF8 fails on text that is not UTF-8. Nearly all of it is ASCII,
// checked eight bytes at a time; otherwise each string is checked on its
// own, since the rendered text being valid as a whole does not make each
// string cut from it valid.
func checkUTF8(rd *manifest.Rendered) error {
	if isASCII(rd.Text) && keysASCII(rd) {
		return nil
	}
	for _, entries := range [][]manifest.RenderedKV{rd.Envs, rd.Annotations} {
		for _, kv := range entries {
			if !utf8.ValidString(kv.Key) || !utf8.Valid(rd.Bytes(kv.Value)) {
				return fmt.Errorf("%q=%q is not valid UTF-8", kv.Key, rd.Bytes(kv.Value))
			}
		}
	}
	for _, m := range rd.Mounts {
		if !utf8.Valid(rd.Bytes(m.ContainerPath)) || !utf8.Valid(rd.Bytes(m.HostPath)) {
			return fmt.Errorf("mount %q:%q is not valid UTF-8", rd.Bytes(m.HostPath), rd.Bytes(m.ContainerPath))
		}
	}
	for _, d := range rd.Devices {
		if !utf8.Valid(rd.Bytes(d.ContainerPath)) || !utf8.Valid(rd.Bytes(d.HostPath)) || !utf8.ValidString(d.Permissions) {
			return fmt.Errorf("device %q:%q is not valid UTF-8", rd.Bytes(d.HostPath), rd.Bytes(d.ContainerPath))
		}
	}
	for _, name := range rd.CDIDevices {
		if !utf8.Valid(rd.Bytes(name)) {
			return fmt.Errorf("CDI device %q is not valid UTF-8", rd.Bytes(name))
		}
	}
	return nil
}

// keysASCII reports whether the strings of rd that are not in its text
// (keys and permissions, from the manifest) are ASCII.
func keysASCII(rd *manifest.Rendered) bool {
	for _, kv := range rd.Envs {
		if !isASCIIString(kv.Key) {
			return false
		}
	}
	for _, kv := range rd.Annotations {
		if !isASCIIString(kv.Key) {
			return false
		}
	}
	for _, d := range rd.Devices {
		if !isASCIIString(d.Permissions) {
			return false
		}
	}
	return true
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080808080808080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func mapEntrySize(kv manifest.RenderedKV) int { return str(kv.Key) + field(spanLen(kv.Value)) }

func mountSize(m manifest.RenderedMount) int {
	n := optSpan(m.ContainerPath) + optSpan(m.HostPath)
	if m.ReadOnly {
		n += 2
	}
	return n
}

func deviceSpecSize(d manifest.RenderedDevice) int {
	return optSpan(d.ContainerPath) + optSpan(d.HostPath) + optString(d.Permissions)
}

// field is the size of a length-delimited field with an n-byte body.
func field(n int) int { return 1 + uvarintLen(uint64(n)) + n }

// str is the size of a string field; optString of one that proto3 leaves
// out when empty; optSpan the same for rendered text.
func str(s string) int { return field(len(s)) }

func optString(s string) int {
	if s == "" {
		return 0
	}
	return str(s)
}

func spanLen(s manifest.Span) int { return s.End - s.Start }

func optSpan(s manifest.Span) int {
	if spanLen(s) == 0 {
		return 0
	}
	return field(spanLen(s))
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

func appendOptSpan(b []byte, tag byte, rd *manifest.Rendered, s manifest.Span) []byte {
	if spanLen(s) == 0 {
		return b
	}
	b = append(b, tag)
	b = appendUvarint(b, uint64(spanLen(s)))
	return append(b, rd.Bytes(s)...)
}
