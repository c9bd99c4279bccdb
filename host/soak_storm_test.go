package host_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"simple-device-plugin/manifest"
)

const (
	stormResources = 20
	stormClients   = 64
	// stormConnsPerResource: the clients share a few connections per
	// resource, as several kubelet workers would; one each would be 1,280
	// connections, near the race detector's goroutine limit.
	stormConnsPerResource = 4
)

// The two device sets the storm's generations alternate between: a reload
// removes devices (d0, d1 or d8, d9), adds others and moves the unhealthy
// one, and changes the allocation policy, so GetPreferredAllocation answers
// differ too.
var stormDeviceSets = [2]struct {
	ids       []string
	unhealthy string
	policy    string
}{
	{ids: []string{"d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"}, unhealthy: "d7", policy: "spread"},
	{ids: []string{"d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"}, unhealthy: "d2", policy: "packed"},
}

func stormResource(r int) string { return fmt.Sprintf("storm.example.com/r%02d", r) }
func stormGenEnv(r int) string   { return fmt.Sprintf("GEN_R%02d", r) }

// stormManifest is generation gen: every template renders the generation,
// so a response tells which manifest it was served from, and a response
// mixing two generations cannot match either.
func stormManifest(gen int) string {
	set := stormDeviceSets[gen%2]
	var b strings.Builder
	b.WriteString("apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n")
	for r := range stormResources {
		fmt.Fprintf(&b, `  - name: %[1]s
    ids: [%[2]s]
    unhealthy: [%[3]s]
    topology: {numaNodes: 2}
    allocationPolicy: %[4]s
    env:
      %[5]s: "g%[6]d"
      IDS_R%02[7]d: 'g%[6]d:{{ join .IDs "," }}'
    annotations:
      storm.example.com/r%02[7]d: "g%[6]d/{{ .Count }}"
    mounts:
      - {hostPath: "/g%[6]d/{{ .ID }}", containerPath: "/dev/r%02[7]d/{{ .ID }}", perDevice: true}
    devices:
      - {hostPath: /dev/null, containerPath: "/dev/r%02[7]d-{{ .Index }}", perDevice: true}
`, stormResource(r), strings.Join(set.ids, ", "), set.unhealthy, set.policy, stormGenEnv(r), gen, r)
	}
	return b.String()
}

// stormGenerations holds every generation written, by number.
type stormGenerations struct {
	mu   sync.Mutex
	byGN map[int]*manifest.Manifest
}

func (g *stormGenerations) add(t *testing.T, gen int) (string, *manifest.Manifest) {
	t.Helper()
	text := stormManifest(gen)
	m := mustParse(t, text)
	g.mu.Lock()
	g.byGN[gen] = m
	g.mu.Unlock()
	return text, m
}

func (g *stormGenerations) get(gen int) *manifest.Manifest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byGN[gen]
}

// stormStats counts what the clients saw.
type stormStats struct {
	allocated, preferred            atomic.Int64 // answers, each checked against its generation
	unknownIDs, unhealthyIDs        atomic.Int64 // Allocate: InvalidArgument, FailedPrecondition
	preferredInvalid                atomic.Int64 // GetPreferredAllocation: InvalidArgument
	problemCount, generationsBehind atomic.Int64

	mu          sync.Mutex
	problems    []string
	answersFrom map[int]int // Allocate answers by the generation that served them
}

func (s *stormStats) answer(gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answersFrom[gen]++
}

func (s *stormStats) answered(gen int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.answersFrom[gen]
}

func (s *stormStats) generations() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.answersFrom))
}

func (s *stormStats) problem(format string, args ...any) {
	s.problemCount.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 20 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// stormMinGens is how many generations every storm serves answers from,
// however short or slow the run.
const stormMinGens = 4

// TestSoakAllocateStorm: 64 clients call Allocate and GetPreferredAllocation
// on every resource of a 20-resource manifest while the manifest is
// hot-reloaded through ConfigMap-style swaps, alternating between two
// device sets. Only the documented errors may occur (InvalidArgument for
// IDs a reload removed, FailedPrecondition for IDs it made unhealthy), and
// every answer must be exactly what one generation renders. Generations
// advance on events, not on a clock: each is applied and answered from
// before the next is written.
func TestSoakAllocateStorm(t *testing.T) {
	duration := soakDuration(t, 2*time.Second)
	base := measure(t)
	t.Cleanup(func() { checkNoLeak(t, "storm (host stopped)", base, usage{goroutines: 8, fds: 4}) })

	gens := &stormGenerations{byGN: map[int]*manifest.Manifest{}}
	dir := shortTempDir(t)
	cmDir := shortTempDir(t)
	text, first := gens.add(t, 1)
	path := writeConfigMap(t, cmDir, text)
	k := startKubelet(t, dir)
	rh := startHost(t, dir, first)
	startReloader(t, rh, path)
	names := make([]string, stormResources)
	for r := range names {
		names[r] = stormResource(r)
	}
	waitRegistered(t, k, names...)

	conns := make([][]pluginapi.DevicePluginClient, stormResources)
	for r := range conns {
		for range stormConnsPerResource {
			conns[r] = append(conns[r], dial(t, dir, stormResource(r)))
		}
	}
	// The expected GetPreferredAllocation answers of each device set.
	setOf := [2]*manifest.Manifest{mustParse(t, stormManifest(0)), mustParse(t, stormManifest(1))}

	stats := &stormStats{answersFrom: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for c := range stormClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stormClient(ctx, c, conns, gens, setOf, stats)
		}()
	}

	start := time.Now()
	gen := 1
	waitFor(t, "answers from generation 1", func() bool { return stats.answered(1) > 0 })
	for gen < stormMinGens || time.Since(start) < duration {
		gen++
		text, m := gens.add(t, gen)
		writeConfigMap(t, cmDir, text)
		waitFor(t, fmt.Sprintf("generation %d applied", gen), func() bool { return rh.Manifest().Hash == m.Hash })
		waitFor(t, fmt.Sprintf("answers from generation %d", gen), func() bool { return stats.answered(gen) > 0 })
	}
	cancel()
	wg.Wait()
	took := time.Since(start)

	applied := counter(t, rh.Metrics().Registry, "sdp_manifest_reloads_total", "result", "applied")
	invalid := counter(t, rh.Metrics().Registry, "sdp_manifest_reloads_total", "result", "invalid")
	seen := stats.generations()
	total := stats.allocated.Load() + stats.preferred.Load() + stats.unknownIDs.Load() + stats.unhealthyIDs.Load() + stats.preferredInvalid.Load()
	t.Logf("storm: %d clients, %d resources, %v, %d generations written, %d applied, %d invalid",
		stormClients, stormResources, took.Round(time.Millisecond), gen, int(applied), int(invalid))
	t.Logf("storm: %d requests (%.0f/s): Allocate answered %d, refused InvalidArgument (removed IDs) %d, FailedPrecondition (unhealthy IDs) %d; "+
		"GetPreferredAllocation answered %d, refused InvalidArgument %d; other errors %d; generations seen in answers: %d of %d",
		total, float64(total)/took.Seconds(), stats.allocated.Load(), stats.unknownIDs.Load(), stats.unhealthyIDs.Load(),
		stats.preferred.Load(), stats.preferredInvalid.Load(), stats.problemCount.Load(), len(seen), gen)
	for _, p := range stats.problems {
		t.Error(p)
	}
	if applied != float64(gen-1) || invalid != 0 {
		t.Errorf("reloads: %v applied, %v invalid; want %d applied, 0 invalid", applied, invalid, gen-1)
	}
	if stats.allocated.Load() == 0 || stats.preferred.Load() == 0 {
		t.Errorf("the storm got no answers")
	}
	if len(seen) != gen {
		t.Errorf("answers came from generations %v; want every one of 1 to %d", seen, gen)
	}
	// Reloads changed devices and templates only: no resource registered
	// again, and the kubelet follows the last device set.
	want := stormDeviceSets[gen%2]
	for _, name := range names {
		if n := k.Registrations(name); n != 1 {
			t.Errorf("%s registered %d times, want 1 (reloads change devices, not registration)", name, n)
		}
	}
	waitFor(t, "the kubelet to follow the last device set", func() bool {
		for _, name := range names {
			got := healthOf(k.Devices(name))
			if len(got) != len(want.ids) || got[want.unhealthy] != pluginapi.Unhealthy || got[want.ids[3]] != pluginapi.Healthy {
				return false
			}
		}
		return true
	})
}

// stormCallTimeout bounds one call: an answer that takes longer counts as a
// hang (an undocumented DeadlineExceeded). Each call has its own context:
// 64 clients deriving theirs from one shared context contend on its lock.
const stormCallTimeout = 10 * time.Second

// stormClient calls until ctx ends, checking every answer.
func stormClient(ctx context.Context, c int, conns [][]pluginapi.DevicePluginClient, gens *stormGenerations, setOf [2]*manifest.Manifest, stats *stormStats) {
	rng := rand.New(rand.NewPCG(uint64(c), 9))
	lastGen := make([]int, stormResources) // per resource: generations never go back
	for ctx.Err() == nil {
		r := rng.IntN(stormResources)
		client := conns[r][c%stormConnsPerResource]
		// Ask for devices the kubelet would consider healthy under one of
		// the two device sets: under the other, some are gone or unhealthy.
		set := stormDeviceSets[rng.IntN(2)]
		healthy := slices.DeleteFunc(slices.Clone(set.ids), func(id string) bool { return id == set.unhealthy })
		rng.Shuffle(len(healthy), func(i, j int) { healthy[i], healthy[j] = healthy[j], healthy[i] })
		if rng.IntN(2) == 0 {
			ids := healthy[:1+rng.IntN(3)]
			callCtx, cancel := context.WithTimeout(context.Background(), stormCallTimeout)
			resp, err := client.Allocate(callCtx, &pluginapi.AllocateRequest{
				ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}},
			})
			cancel()
			checkStormAllocate(r, ids, resp, err, gens, lastGen, stats)
			continue
		}
		available := healthy[:2+rng.IntN(len(healthy)-1)]
		size := 1 + rng.IntN(len(available))
		var must []string
		if rng.IntN(3) == 0 {
			must = available[:1]
		}
		callCtx, cancel := context.WithTimeout(context.Background(), stormCallTimeout)
		resp, err := client.GetPreferredAllocation(callCtx, &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
				AvailableDeviceIDs: available, MustIncludeDeviceIDs: must, AllocationSize: int32(size),
			}},
		})
		cancel()
		checkStormPreferred(r, available, must, size, resp, err, setOf, stats)
	}
}

// checkStormAllocate: an answer is exactly what its generation renders for
// those IDs, all healthy in it; a refusal names IDs that one generation
// does not have (InvalidArgument) or has unhealthy (FailedPrecondition).
func checkStormAllocate(r int, ids []string, resp *pluginapi.AllocateResponse, err error, gens *stormGenerations, lastGen []int, stats *stormStats) {
	name := stormResource(r)
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.InvalidArgument:
			if !namesOne(st.Message(), ids, func(set int, id string) bool { return !slices.Contains(stormDeviceSets[set].ids, id) }) {
				stats.problem("%s Allocate %v: %v does not name an ID that a generation lacks", name, ids, err)
				return
			}
			stats.unknownIDs.Add(1)
		case codes.FailedPrecondition:
			if !namesOne(st.Message(), ids, func(set int, id string) bool { return stormDeviceSets[set].unhealthy == id }) {
				stats.problem("%s Allocate %v: %v does not name an ID that a generation has unhealthy", name, ids, err)
				return
			}
			stats.unhealthyIDs.Add(1)
		default:
			stats.problem("%s Allocate %v: undocumented error %v", name, ids, err)
		}
		return
	}
	if len(resp.ContainerResponses) != 1 {
		stats.problem("%s Allocate %v: %d container responses", name, ids, len(resp.ContainerResponses))
		return
	}
	got := resp.ContainerResponses[0]
	gen, convErr := strconv.Atoi(strings.TrimPrefix(got.Envs[stormGenEnv(r)], "g"))
	m := gens.get(gen)
	if convErr != nil || m == nil {
		stats.problem("%s Allocate %v: answer names no known generation: envs %v", name, ids, got.Envs)
		return
	}
	if gen < lastGen[r] {
		stats.generationsBehind.Add(1)
		stats.problem("%s Allocate %v: served from generation %d after this client saw %d", name, ids, gen, lastGen[r])
	}
	lastGen[r] = gen
	res := m.Resource(name)
	for _, id := range ids {
		if !res.Has(id) || res.StaticUnhealthy(id) {
			stats.problem("%s Allocate %v: generation %d allocated %s, which it has not healthy", name, ids, gen, id)
			return
		}
	}
	devices, err := res.Positions(ids)
	if err != nil {
		stats.problem("%s Allocate %v: generation %d: %v", name, ids, gen, err)
		return
	}
	want, renderErr := res.Render(devices, "node-1")
	if renderErr != nil {
		stats.problem("%s Allocate %v: generation %d cannot render: %v", name, ids, gen, renderErr)
		return
	}
	if why := sameAllocation(got, want); why != "" {
		stats.problem("%s Allocate %v: answer is not generation %d's: %s", name, ids, gen, why)
		return
	}
	stats.allocated.Add(1)
	stats.answer(gen)
}

// checkStormPreferred: an answer is exactly what one device set's policy
// picks; a refusal is InvalidArgument for a request one device set cannot
// serve.
func checkStormPreferred(r int, available, must []string, size int, resp *pluginapi.PreferredAllocationResponse, err error, setOf [2]*manifest.Manifest, stats *stormStats) {
	name := stormResource(r)
	var answers [2][]string
	var refusals [2]error
	for set := range setOf {
		answers[set], refusals[set] = setOf[set].Resource(name).Preferred(available, must, size)
	}
	if err != nil {
		if status.Code(err) != codes.InvalidArgument || (refusals[0] == nil && refusals[1] == nil) {
			stats.problem("%s GetPreferredAllocation(%v, %v, %d): %v; no generation refuses it", name, available, must, size, err)
			return
		}
		stats.preferredInvalid.Add(1)
		return
	}
	got := resp.ContainerResponses[0].DeviceIDs
	for set := range setOf {
		if refusals[set] == nil && slices.Equal(got, answers[set]) {
			stats.preferred.Add(1)
			return
		}
	}
	stats.problem("%s GetPreferredAllocation(%v, %v, %d) = %v; the generations answer %v and %v", name, available, must, size, got, answers[0], answers[1])
}

// namesOne reports whether msg names one of ids that holds in some device set.
func namesOne(msg string, ids []string, bad func(set int, id string) bool) bool {
	for _, id := range ids {
		if !strings.Contains(msg, id) {
			continue
		}
		for set := range stormDeviceSets {
			if bad(set, id) {
				return true
			}
		}
	}
	return false
}

// sameAllocation compares an Allocate answer with a rendered allocation,
// field by field; it says what differs, or "".
func sameAllocation(got *pluginapi.ContainerAllocateResponse, want *manifest.Allocation) string {
	if !maps.Equal(got.Envs, want.Envs) {
		return fmt.Sprintf("envs %v, want %v", got.Envs, want.Envs)
	}
	if !maps.Equal(got.Annotations, want.Annotations) {
		return fmt.Sprintf("annotations %v, want %v", got.Annotations, want.Annotations)
	}
	if len(got.Mounts) != len(want.Mounts) {
		return fmt.Sprintf("%d mounts, want %d", len(got.Mounts), len(want.Mounts))
	}
	for i, m := range got.Mounts {
		if w := want.Mounts[i]; m.ContainerPath != w.ContainerPath || m.HostPath != w.HostPath || m.ReadOnly != w.ReadOnly {
			return fmt.Sprintf("mount %d %v, want %+v", i, m, w)
		}
	}
	if len(got.Devices) != len(want.Devices) {
		return fmt.Sprintf("%d devices, want %d", len(got.Devices), len(want.Devices))
	}
	for i, d := range got.Devices {
		if w := want.Devices[i]; d.ContainerPath != w.ContainerPath || d.HostPath != w.HostPath || d.Permissions != w.Permissions {
			return fmt.Sprintf("device %d %v, want %+v", i, d, w)
		}
	}
	if len(got.CdiDevices) != len(want.CDIDevices) {
		return fmt.Sprintf("%d CDI devices, want %d", len(got.CdiDevices), len(want.CDIDevices))
	}
	for i, c := range got.CdiDevices {
		if c.Name != want.CDIDevices[i] {
			return fmt.Sprintf("CDI device %d %q, want %q", i, c.Name, want.CDIDevices[i])
		}
	}
	return ""
}
