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
	rounds := b.rounds(41, 3)
	const warmup, calls = 200, 1000

	hk, hostDir, hostDone, err := startKubeletInTempDir()
	if err != nil {
		return err
	}
	defer hostDone()
	mk, minDir, minDone, err := startKubeletInTempDir()
	if err != nil {
		return err
	}
	defer minDone()

	allocateManifest, err := b.readTestdata(allocateManifestFile)
	if err != nil {
		return err
	}
	manifestPath := filepath.Join(hostDir, "manifest.yaml")
	if err := os.WriteFile(manifestPath, allocateManifest, 0o644); err != nil {
		return err
	}
	host, err := b.startHost("allocate-host", hostDir, manifestPath)
	if err != nil {
		return err
	}
	defer host.stop(5 * time.Second)
	if _, err := waitAllListed(hk, []string{fpga}, 30*time.Second); err != nil {
		return err
	}
	hostClient, err := client(hk, fpga)
	if err != nil {
		return err
	}

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
	if _, err := waitAllListed(mk, []string{fpga}, 30*time.Second); err != nil {
		return err
	}
	minClient, err := client(mk, fpga)
	if err != nil {
		return err
	}
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
	// Calls alternate between host and baseline one by one, so both see
	// the same machine: on a shared 2-core VM, load from elsewhere comes
	// in bursts longer than a call but shorter than a batch.
	for round := range rounds {
		for _, n := range sizes {
			lat, err := timeAllocatePairs(hostClient, minClient, requests[n], warmup, calls, round%2 == 1)
			if err != nil {
				return err
			}
			p50[n].add(us(percentile(lat[0], 50)), us(percentile(lat[1], 50)))
			p99[n].add(us(percentile(lat[0], 99)), us(percentile(lat[1], 99)))
		}
	}
	if err := host.alive(); err != nil {
		return err
	}

	b.section("Allocate", fmt.Sprintf("One container's Allocate over the kubelet's connection (unix socket, separate processes): "+
		"host (the example's FPGA resource: env, annotation, shared and per-device mounts, device nodes, CDI) against the minimal plugin "+
		"returning the same bytes prepared in advance. %d rounds; in each, %d calls per subject after %d warm-up calls, alternating host and "+
		"baseline call by call (which goes first alternates by round), so both see the same load.", rounds, calls, warmup))
	var figs []figure
	for _, n := range sizes {
		f := p50[n].figure("allocate", fmt.Sprintf("Allocate p50, %d devices", n), "µs", b.baseName())
		figs = append(figs, f.withGoal("≤ 1.05 × baseline", f.Ratio <= 1.05))
		figs = append(figs, p99[n].figure("allocate", fmt.Sprintf("Allocate p99, %d devices", n), "µs", b.baseName()))
	}
	b.publish(figs...)
	return nil
}

// timeAllocatePairs times calls Allocate round trips on each client after
// warmup, alternating a and b call by call (b first when bFirst), and
// returns the sorted latencies of each.
func timeAllocatePairs(a, b pluginapi.DevicePluginClient, req *pluginapi.AllocateRequest, warmup, calls int, bFirst bool) ([2][]time.Duration, error) {
	ctx := context.Background()
	var lat [2][]time.Duration
	clients := [2]pluginapi.DevicePluginClient{a, b}
	order := [2]int{0, 1}
	if bFirst {
		order = [2]int{1, 0}
	}
	for i := range warmup + calls {
		for _, who := range order {
			start := time.Now()
			if _, err := clients[who].Allocate(ctx, req); err != nil {
				return lat, err
			}
			if i >= warmup {
				lat[who] = append(lat[who], time.Since(start))
			}
		}
	}
	slices.Sort(lat[0])
	slices.Sort(lat[1])
	return lat, nil
}
