package host

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

const (
	// KubeletReceiveLimit is the kubelet's default gRPC receive limit,
	// which a ListAndWatch message must stay under.
	KubeletReceiveLimit = 4 << 20
	// MaxListAndWatchBytes bounds one ListAndWatch message at half that, so
	// health changes and protocol framing never push a valid manifest over.
	MaxListAndWatchBytes = KubeletReceiveLimit / 2
)

// CheckDeviceList refuses a device list whose ListAndWatch message could
// outgrow MaxListAndWatchBytes. Pass it to manifest.Parse and friends.
func CheckDeviceList(ids []string, topology bool) error {
	size := ListAndWatchSize(ids, topology)
	if size <= MaxListAndWatchBytes {
		return nil
	}
	return fmt.Errorf("%d devices encode to a %s ListAndWatch message; the kubelet accepts at most %s and this plugin allows %s to stay safely under it; use fewer devices or shorter IDs, or split the resource",
		len(ids), fmtBytes(size), fmtBytes(KubeletReceiveLimit), fmtBytes(MaxListAndWatchBytes))
}

// ListAndWatchSize is the encoded size of the ListAndWatch message listing
// ids at their largest: every device Unhealthy and, with topology, on the
// largest NUMA node allowed.
func ListAndWatchSize(ids []string, topology bool) int {
	tag := protowire.SizeTag(1) // every field number here is below 16: one byte
	numaNode := tag + protowire.SizeVarint(manifest.MaxNUMANode)
	topologyInfo := tag + protowire.SizeBytes(numaNode)
	total := 0
	for _, id := range ids {
		device := tag + protowire.SizeBytes(len(id)) + tag + protowire.SizeBytes(len(pluginapi.Unhealthy))
		if topology {
			device += tag + protowire.SizeBytes(topologyInfo)
		}
		total += tag + protowire.SizeBytes(device)
	}
	return total
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
