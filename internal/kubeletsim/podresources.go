package kubeletsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc"
	api "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// PodResources stands in for the kubelet's PodResources API (List only):
// it answers with what the caller set, over a real unix socket.
type PodResources struct {
	api.UnimplementedPodResourcesListerServer

	server *grpc.Server
	served chan struct{}

	mu    sync.Mutex
	resp  *api.ListPodResourcesResponse
	err   error
	calls int
}

// StartPodResources serves the API on socket until Stop.
func StartPodResources(socket string) (*PodResources, error) {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove old %s: %w", socket, err)
	}
	lis, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socket, err)
	}
	p := &PodResources{server: grpc.NewServer(), served: make(chan struct{}), resp: &api.ListPodResourcesResponse{}}
	api.RegisterPodResourcesListerServer(p.server, p)
	go func() {
		defer close(p.served)
		_ = p.server.Serve(lis) // ends at Stop
	}()
	return p, nil
}

// Set is what List answers from now on, with err nil.
func (p *PodResources) Set(resp *api.ListPodResourcesResponse) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resp, p.err = resp, nil
}

// Fail makes List fail with err (a gRPC status error, say).
func (p *PodResources) Fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

// Calls counts List calls so far.
func (p *PodResources) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// List answers with what Set gave.
func (p *PodResources) List(context.Context, *api.ListPodResourcesRequest) (*api.ListPodResourcesResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return p.resp, p.err
}

// Stop closes the socket and ends every call.
func (p *PodResources) Stop() {
	p.server.Stop()
	<-p.served
}

// Pod builds one pod's entry of a List answer: containers by name, each
// with device IDs by resource name.
func Pod(namespace, name string, containers map[string]map[string][]string) *api.PodResources {
	pod := &api.PodResources{Namespace: namespace, Name: name}
	for cname, byResource := range containers {
		c := &api.ContainerResources{Name: cname}
		for resource, ids := range byResource {
			c.Devices = append(c.Devices, &api.ContainerDevices{ResourceName: resource, DeviceIds: ids})
		}
		pod.Containers = append(pod.Containers, c)
	}
	return pod
}
