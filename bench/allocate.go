package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const fpga = "example.com/fpga"

// allocate: one container's Allocate round trip, host against the minimal
// plugin answering the very same response bytes, over the kubelet's own
// connection to each (the one Register dialled back).
func (b *bench) allocate() error {
	sizes := []int{1, 3, 64}
	rounds := b.rounds(21, 3)
	const warmup, calls = 200, 1000

	hostDir, err := tempDir("sdpb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(hostDir)
	minDir, err := tempDir("sdpb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(minDir)

	hk, err := startKubelet(hostDir)
	if err != nil {
		return err
	}
	defer hk.stop()
	mk, err := startKubelet(minDir)
	if err != nil {
		return err
	}
	defer mk.stop()

	manifestPath := filepath.Join(hostDir, "manifest.yaml")
	if err := os.WriteFile(manifestPath, []byte(allocateManifest), 0o644); err != nil {
		return err
	}
	host, err := b.startHost("allocate-host", hostDir, manifestPath)
	if err != nil {
		return err
	}
	defer host.stop(5 * time.Second)
	if _, err := hk.waitAllListed([]string{fpga}, 30*time.Second); err != nil {
		return err
	}
	hostClient := hk.client(fpga)

	// The requests: devices spread over the resource, in the kubelet's
	// (unsorted) order. The host's answers become the baseline's fixed ones.
	rng := rand.New(rand.NewPCG(1, 2))
	requests := map[int]*pluginapi.AllocateRequest{}
	answers := map[string][]byte{}
	for _, n := range sizes {
		ids := make([]string, n)
		for i, p := range rng.Perm(128)[:n] {
			ids[i] = "fpga-" + strconv.Itoa(p)
		}
		req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}}
		resp, err := hostClient.Allocate(context.Background(), req)
		if err != nil {
			return fmt.Errorf("host Allocate of %d devices: %w", n, err)
		}
		requests[n] = req
		answers[strconv.Itoa(n)], _ = proto.Marshal(resp)
	}
	responsesPath := filepath.Join(minDir, "responses.json")
	data, _ := json.Marshal(answers)
	if err := os.WriteFile(responsesPath, data, 0o644); err != nil {
		return err
	}
	minimal, err := b.startBaseline("allocate", minDir, manifestPath, "-name", fpga, "-devices", "128", "-id-prefix", "fpga-", "-responses", responsesPath)
	if err != nil {
		return err
	}
	defer minimal.stop(5 * time.Second)
	if _, err := mk.waitAllListed([]string{fpga}, 30*time.Second); err != nil {
		return err
	}
	minClient := mk.client(fpga)
	for _, n := range sizes {
		resp, err := minClient.Allocate(context.Background(), requests[n])
		if err != nil {
			return err
		}
		got, _ := proto.Marshal(resp)
		if len(got) != len(answers[strconv.Itoa(n)]) {
			return fmt.Errorf("the baseline's answer for %d devices is %d bytes, the host's %d", n, len(got), len(answers[strconv.Itoa(n)]))
		}
	}

	p50 := map[int]*series{}
	p99 := map[int]*series{}
	for _, n := range sizes {
		p50[n], p99[n] = &series{}, &series{}
	}
	clients := []pluginapi.DevicePluginClient{hostClient, minClient}
	for round := range rounds {
		for _, n := range sizes {
			var res [2][2]time.Duration // subject, baseline × p50, p99
			order := []int{0, 1}
			if round%2 == 1 {
				order = []int{1, 0}
			}
			for _, who := range order {
				lat, err := timeAllocate(clients[who], requests[n], warmup, calls)
				if err != nil {
					return err
				}
				res[who] = [2]time.Duration{percentile(lat, 50), percentile(lat, 99)}
			}
			p50[n].add(us(res[0][0]), us(res[1][0]))
			p99[n].add(us(res[0][1]), us(res[1][1]))
		}
	}
	if err := host.alive(); err != nil {
		return err
	}

	b.section("Allocate", fmt.Sprintf("One container's Allocate over the kubelet's connection (unix socket, separate processes): "+
		"host (the example's FPGA resource: env, annotation, shared and per-device mounts, device nodes, CDI) against the minimal plugin "+
		"returning the same bytes prepared in advance. %d rounds, host and baseline alternating first; each round %d calls per subject "+
		"after %d warm-up calls.", rounds, calls, warmup))
	var figs []figure
	for _, n := range sizes {
		f := p50[n].figure("allocate", fmt.Sprintf("Allocate p50, %d devices", n), "µs", b.baseName())
		figs = append(figs, f.withGoal("≤ 1.05 × baseline", f.Ratio <= 1.05))
		figs = append(figs, p99[n].figure("allocate", fmt.Sprintf("Allocate p99, %d devices", n), "µs", b.baseName()))
	}
	b.publish(figs...)
	return nil
}

// timeAllocate times calls sequential Allocate round trips after warmup.
func timeAllocate(c pluginapi.DevicePluginClient, req *pluginapi.AllocateRequest, warmup, calls int) ([]time.Duration, error) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, calls)
	for i := range warmup + calls {
		start := time.Now()
		if _, err := c.Allocate(ctx, req); err != nil {
			return nil, err
		}
		if i >= warmup {
			lat = append(lat, time.Since(start))
		}
	}
	slices.Sort(lat)
	return lat, nil
}
