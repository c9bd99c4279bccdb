package host

import (
	"math/bits"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

// A ListAndWatch message is the biggest thing a plugin holds: with 1,000
// devices per resource, pluginapi.Device structs cost ~80 bytes a device
// (40 MB for 500 resources), their wire form ~20. So the device list is not
// kept as protobuf structs at all: each send encodes it straight from the
// resource's IDs, health and topology into wire bytes, and the server's
// codec passes those bytes through.

// wireMessage is a protobuf message already in wire form.
type wireMessage []byte

// codec is the servers' codec: the standard protobuf codec, except that a
// wireMessage goes out as is.
type codec struct{ proto encoding.CodecV2 }

var serverCodec = codec{proto: encoding.GetCodecV2(protocodec.Name)}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.(wireMessage); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

// Name is the content subtype the codec serves: the protobuf one.
func (c codec) Name() string { return protocodec.Name }

// Protobuf wire tags of the fields written (field number << 3 | wire type 2).
const (
	tagDevices  = 1<<3 | 2 // ListAndWatchResponse.devices
	tagID       = 1<<3 | 2 // Device.ID
	tagHealth   = 2<<3 | 2 // Device.health
	tagTopology = 3<<3 | 2 // Device.topology
	tagNodes    = 1<<3 | 2 // TopologyInfo.nodes
	tagNodeID   = 1<<3 | 0 // NUMANode.ID (varint)
)

// encodeList writes the ListAndWatchResponse of res with the given health
// (unhealthy by device index) in protobuf wire form, byte for byte what
// proto.Marshal writes for the equivalent message.
func encodeList(res *manifest.Resource, unhealthy []bool) wireMessage {
	size := 0
	for i, id := range res.IDs {
		n := deviceSize(res, i, id, unhealthy[i])
		size += 1 + uvarintLen(uint64(n)) + n
	}
	b := make([]byte, 0, size)
	for i, id := range res.IDs {
		bad := unhealthy[i]
		b = append(b, tagDevices)
		b = appendUvarint(b, uint64(deviceSize(res, i, id, bad)))
		b = append(b, tagID)
		b = appendUvarint(b, uint64(len(id)))
		b = append(b, id...)
		health := healthString(bad)
		b = append(b, tagHealth)
		b = appendUvarint(b, uint64(len(health)))
		b = append(b, health...)
		if node, ok := res.NUMANode(i); ok {
			nodeLen := numaNodeSize(node)
			b = append(b, tagTopology)
			b = appendUvarint(b, uint64(1+uvarintLen(uint64(nodeLen))+nodeLen))
			b = append(b, tagNodes)
			b = appendUvarint(b, uint64(nodeLen))
			if node != 0 { // proto3 leaves zero out
				b = append(b, tagNodeID)
				b = appendUvarint(b, uint64(node))
			}
		}
	}
	// TestEncodeListIsTheProtobufEncoding holds this to proto.Marshal, byte for byte.
	return b
}

// deviceSize is the encoded size of one Device message's fields.
func deviceSize(res *manifest.Resource, i int, id string, bad bool) int {
	health := healthString(bad)
	n := 1 + uvarintLen(uint64(len(id))) + len(id) + 1 + uvarintLen(uint64(len(health))) + len(health)
	if node, ok := res.NUMANode(i); ok {
		nodeLen := numaNodeSize(node)
		topo := 1 + uvarintLen(uint64(nodeLen)) + nodeLen
		n += 1 + uvarintLen(uint64(topo)) + topo
	}
	return n
}

func numaNodeSize(node int) int {
	if node == 0 {
		return 0
	}
	return 1 + uvarintLen(uint64(node))
}

func healthString(unhealthy bool) string {
	if unhealthy {
		return pluginapi.Unhealthy
	}
	return pluginapi.Healthy
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func appendUvarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
