// Package manifest holds the simple-device-plugin manifest: its schema,
// strict loading, validation that reports every problem at once, and the
// compiled form that renders one container's allocation without parsing or
// I/O. It knows nothing of gRPC, sockets or the kubelet.
package manifest

import (
	"encoding/json"
	"fmt"
	"time"
)

// APIVersion is the only manifest version this build understands.
const APIVersion = "simple-device-plugin/v1alpha1"

// Kind is the manifest's kind.
const Kind = "Manifest"

// Spec is the manifest exactly as the user writes it (after defaults).
type Spec struct {
	APIVersion string         `json:"apiVersion" validate:"required"`
	Kind       string         `json:"kind" validate:"required"`
	Resources  []ResourceSpec `json:"resources" validate:"required,min=1,dive"`
}

// ResourceSpec declares one extended resource served as its own device plugin.
type ResourceSpec struct {
	Name             string            `json:"name" validate:"required,extendedresource"`
	Count            *int              `json:"count,omitempty" validate:"omitempty,min=1"`
	Discover         *DiscoverSpec     `json:"discover,omitempty"`
	IDs              []string          `json:"ids,omitempty" validate:"omitempty,min=1,dive,deviceid"` // deviceid also says empty and too long
	IDTemplate       string            `json:"idTemplate,omitempty"`
	Env              map[string]string `json:"env,omitempty" validate:"omitempty,dive,keys,required,envname,endkeys"`
	Annotations      map[string]string `json:"annotations,omitempty" validate:"omitempty,dive,keys,required,annotationkey,endkeys"`
	Mounts           []MountSpec       `json:"mounts,omitempty" validate:"omitempty,dive"`
	Devices          []DeviceSpec      `json:"devices,omitempty" validate:"omitempty,dive"`
	CDIDevices       []CDIDeviceSpec   `json:"cdiDevices,omitempty" validate:"omitempty,dive"`
	CDI              *CDISpec          `json:"cdi,omitempty"`
	Unhealthy        []string          `json:"unhealthy,omitempty" validate:"omitempty,dive,required"`
	HealthCheck      *HealthCheckSpec  `json:"healthCheck,omitempty"`
	Topology         *TopologySpec     `json:"topology,omitempty"`
	AllocationPolicy string            `json:"allocationPolicy,omitempty" validate:"omitempty,oneof=packed spread first"`
	Nodes            []string          `json:"nodes,omitempty" validate:"omitempty,dive,required,glob"`
	PreStartRequired bool              `json:"preStartRequired,omitempty"`
	API              string            `json:"api,omitempty" validate:"omitempty,oneof=devicePlugin dra"`
	DRA              *DRASpec          `json:"dra,omitempty"`
}

// DiscoverSpec finds the resource's devices on the host instead of count
// or ids: every match of paths (or every group of matches) is a device,
// followed as it comes and goes.
type DiscoverSpec struct {
	Paths         []string        `json:"paths,omitempty" validate:"omitempty,dive,required"`
	USB           []USBSpec       `json:"usb,omitempty" validate:"omitempty,dive"`
	Groups        *DiscoverGroups `json:"groups,omitempty"`
	Share         int             `json:"share,omitempty" validate:"omitempty,min=1,max=1000"`
	ContainerPath string          `json:"containerPath,omitempty"`
	Permissions   string          `json:"permissions,omitempty" validate:"permissions"`
}

// USBSpec keeps the matches whose USB device has these IDs.
type USBSpec struct {
	Vendor  string `json:"vendor" validate:"required,usbid"`
	Product string `json:"product" validate:"required,usbid"`
	Serial  string `json:"serial,omitempty"`
}

// DiscoverGroups ties several matches into one device by a key taken from
// each match's base name.
type DiscoverGroups struct {
	Key   string   `json:"key" validate:"required"`
	Paths []string `json:"paths" validate:"required,min=1,dive,required"`
}

// MountSpec is a host path bind-mounted into the container.
type MountSpec struct {
	HostPath      string `json:"hostPath" validate:"required"`
	ContainerPath string `json:"containerPath" validate:"required"`
	ReadOnly      bool   `json:"readOnly,omitempty"`
	PerDevice     bool   `json:"perDevice,omitempty"`
}

// DeviceSpec is a host device node made available in the container.
type DeviceSpec struct {
	HostPath      string `json:"hostPath" validate:"required"`
	ContainerPath string `json:"containerPath" validate:"required"`
	Permissions   string `json:"permissions,omitempty" validate:"permissions"`
	PerDevice     bool   `json:"perDevice,omitempty"`
}

// CDIDeviceSpec is a fully qualified CDI device name (vendor/class=name).
type CDIDeviceSpec struct {
	Name      string `json:"name" validate:"required"`
	PerDevice bool   `json:"perDevice,omitempty"`
}

// CDISpec asks the host to write a CDI spec for the resource: each device
// ID is the CDI device <kind>=<ID>, whose edits are the per-device mounts
// and device nodes, and Allocate answers with those names.
type CDISpec struct {
	Spec bool   `json:"spec"`
	Kind string `json:"kind,omitempty"` // vendor/class; default the resource name
}

// HealthCheckSpec marks a device healthy while a templated host path exists.
type HealthCheckSpec struct {
	Path     string   `json:"path" validate:"required"`
	Interval Duration `json:"interval,omitempty" validate:"interval"`
}

// TopologySpec places devices on virtual NUMA nodes: either NUMANodes
// contiguous blocks, or an explicit device ID to node map.
type TopologySpec struct {
	NUMANodes int            `json:"numaNodes,omitempty" validate:"omitempty,min=1,max=1024"` // max is maxNUMANodes
	NodeOf    map[string]int `json:"nodeOf,omitempty" validate:"omitempty,dive,keys,required,endkeys,min=0,max=1023"`
}

// maxNUMANodes bounds topology.numaNodes, as its struct tag does.
const maxNUMANodes = 1024

// MaxNUMANode is the largest NUMA node a manifest may name.
const MaxNUMANode = maxNUMANodes - 1

// Allocation policies for GetPreferredAllocation.
const (
	PolicyPacked = "packed"
	PolicySpread = "spread"
	PolicyFirst  = "first"
)

// Duration is a time.Duration written as a Go duration string ("5s", "1m").
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a duration string such as "5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"5s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration; write it like \"5s\" or \"1m30s\"", s)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}
