// Package dra serves api: dra resources as Kubernetes DRA drivers: their
// devices published as ResourceSlices of this node, a DeviceClass per
// resource so unchanged limits: pods are served too, and claims prepared
// into a CDI spec each, checkpointed so a restarted driver unprepares them.
// k8s.io/dynamic-resource-allocation does the plumbing (registration with
// the kubelet, the gRPC service, the ResourceSlice controller).
package dra

import (
	"fmt"

	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	"k8s.io/utils/ptr"

	"simple-device-plugin/manifest"
)

// SliceDevices is the most devices one ResourceSlice holds: the API server
// allows 64 when any device carries a taint, as unhealthy ones do.
const SliceDevices = resourceapi.ResourceSliceMaxDevicesWithAdvancedFeatures

// TaintKey is the key of the taint an unhealthy device carries.
func TaintKey(driver string) string { return driver + "/unhealthy" }

// Devices are the resource's devices as DRA devices: attributes in the
// driver's domain, capacity, and a NoSchedule taint on the unhealthy ones.
func Devices(r *manifest.Resource, node string, unhealthy func(id string) bool) ([]resourceapi.Device, error) {
	out := make([]resourceapi.Device, len(r.IDs))
	for i, id := range r.IDs {
		attrs, err := r.Attributes(i, node)
		if err != nil {
			return nil, err
		}
		d := resourceapi.Device{
			Name: id,
			Attributes: map[resourceapi.QualifiedName]resourceapi.DeviceAttribute{
				manifest.AttributeIndex: {IntValue: ptr.To(int64(i))},
				manifest.AttributeID:    {StringValue: ptr.To(id)},
			},
		}
		if n, ok := r.NUMANode(i); ok {
			d.Attributes[manifest.AttributeNUMA] = resourceapi.DeviceAttribute{IntValue: ptr.To(int64(n))}
		}
		for _, a := range attrs {
			d.Attributes[resourceapi.QualifiedName(a.Name)] = attributeValue(a)
		}
		if caps := r.Capacities(); len(caps) > 0 {
			d.Capacity = make(map[resourceapi.QualifiedName]resourceapi.DeviceCapacity, len(caps))
			for _, c := range caps {
				d.Capacity[resourceapi.QualifiedName(c.Name)] = resourceapi.DeviceCapacity{Value: c.Value}
			}
		}
		if unhealthy != nil && unhealthy(id) {
			d.Taints = []resourceapi.DeviceTaint{{Key: TaintKey(r.Driver()), Value: "true", Effect: resourceapi.DeviceTaintEffectNoSchedule}}
		}
		out[i] = d
	}
	return out, nil
}

func attributeValue(a manifest.Attribute) resourceapi.DeviceAttribute {
	switch a.Kind {
	case manifest.AttributeBool:
		return resourceapi.DeviceAttribute{BoolValue: ptr.To(a.Bool)}
	case manifest.AttributeInt:
		return resourceapi.DeviceAttribute{IntValue: ptr.To(a.Int)}
	case manifest.AttributeVersion:
		return resourceapi.DeviceAttribute{VersionValue: ptr.To(a.Value)}
	}
	return resourceapi.DeviceAttribute{StringValue: ptr.To(a.Value)}
}

// Resources is what the driver publishes: one pool named after the node,
// the devices in manifest order, SliceDevices to a slice.
func Resources(r *manifest.Resource, node string, unhealthy func(id string) bool) (resourceslice.DriverResources, error) {
	devices, err := Devices(r, node, unhealthy)
	if err != nil {
		return resourceslice.DriverResources{}, err
	}
	var slices []resourceslice.Slice
	for start := 0; start < len(devices); start += SliceDevices {
		slices = append(slices, resourceslice.Slice{Devices: devices[start:min(start+SliceDevices, len(devices))]})
	}
	if slices == nil {
		slices = []resourceslice.Slice{{}} // an empty pool, so old slices go
	}
	return resourceslice.DriverResources{Pools: map[string]resourceslice.Pool{node: {Slices: slices}}}, nil
}

// ResourceSlices are the objects Resources stands for, named as the
// ResourceSlice controller names them, for simulate to print.
func ResourceSlices(r *manifest.Resource, node string, unhealthy func(id string) bool) ([]resourceapi.ResourceSlice, error) {
	res, err := Resources(r, node, unhealthy)
	if err != nil {
		return nil, err
	}
	pool := res.Pools[node]
	out := make([]resourceapi.ResourceSlice, len(pool.Slices))
	for i, s := range pool.Slices {
		out[i] = resourceapi.ResourceSlice{
			TypeMeta:   metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "ResourceSlice"},
			ObjectMeta: metav1.ObjectMeta{GenerateName: fmt.Sprintf("%05x-%s-%s-", i, r.Driver(), node)},
			Spec: resourceapi.ResourceSliceSpec{
				Driver:   r.Driver(),
				Pool:     resourceapi.ResourcePool{Name: node, Generation: 1, ResourceSliceCount: int64(len(pool.Slices))},
				NodeName: ptr.To(node),
				Devices:  s.Devices,
			},
		}
	}
	return out, nil
}

// DeviceClass is the class of a resource: every device of its driver, and
// the resource name as its extended resource name, so a pod that asks for
// limits: {example.com/fpga: 1} is served through DRA unchanged.
func DeviceClass(r *manifest.Resource) *resourceapi.DeviceClass {
	return &resourceapi.DeviceClass{
		TypeMeta:   metav1.TypeMeta{APIVersion: resourceapi.SchemeGroupVersion.String(), Kind: "DeviceClass"},
		ObjectMeta: metav1.ObjectMeta{Name: r.Driver(), Labels: map[string]string{ManagedByLabel: FieldManager}},
		Spec: resourceapi.DeviceClassSpec{
			Selectors:            []resourceapi.DeviceSelector{{CEL: &resourceapi.CELDeviceSelector{Expression: fmt.Sprintf("device.driver == %q", r.Driver())}}},
			ExtendedResourceName: ptr.To(r.Name),
		},
	}
}

// FieldManager is the field manager of the DeviceClasses the host applies.
const FieldManager = "simple-device-plugin"

// ManagedByLabel marks the DeviceClasses the host applies.
const ManagedByLabel = "app.kubernetes.io/managed-by"
