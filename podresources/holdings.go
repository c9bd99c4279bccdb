// Package podresources reads, from the kubelet's PodResources API, which
// pod and container hold each device of the host's own resources. The
// device-plugin API never says: the kubelet passes no pod to Allocate.
package podresources

import (
	api "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// DefaultSocket is where the kubelet serves the PodResources API.
const DefaultSocket = "/var/lib/kubelet/pod-resources/kubelet.sock"

// Holder is one container that holds a device.
type Holder struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
}

// Holdings maps resource name → device ID → the containers holding it.
// The kubelet lists active pods only, so a device nobody holds is absent.
type Holdings map[string]map[string][]Holder

// FromList keeps, from a List answer, the devices of the resources in
// ours; every other resource on the node is someone else's business.
func FromList(resp *api.ListPodResourcesResponse, ours map[string]bool) Holdings {
	h := Holdings{}
	for _, pod := range resp.GetPodResources() {
		for _, c := range pod.GetContainers() {
			for _, d := range c.GetDevices() {
				name := d.GetResourceName()
				if !ours[name] {
					continue
				}
				devices := h[name]
				if devices == nil {
					devices = map[string][]Holder{}
					h[name] = devices
				}
				holder := Holder{Namespace: pod.GetNamespace(), Pod: pod.GetName(), Container: c.GetName()}
				for _, id := range d.GetDeviceIds() {
					// The kubelet lists a device once per NUMA node it is on.
					if hs := devices[id]; len(hs) > 0 && hs[len(hs)-1] == holder {
						continue
					}
					devices[id] = append(devices[id], holder)
				}
			}
		}
	}
	return h
}
