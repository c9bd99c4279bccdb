package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"simple-device-plugin/internal/kubeletsim"
)

// reloadSubject is a host serving a manifest from a ConfigMap-style dir.
type reloadSubject struct {
	run       *subjectRun
	cmDir     string
	resources int
	counts    []int // devices per resource in the current version
}

// startReloadSubject runs bin (the host under test, or with -versus the
// older one) on a manifest of resources.
func (b *bench) startReloadSubject(tag, bin string, resources int) (*reloadSubject, error) {
	dir, err := tempDir("sdpb")
	if err != nil {
		return nil, err
	}
	cmDir, err := tempDir("sdpb-cm")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &reloadSubject{run: &subjectRun{dir: dir, names: scaleNames(resources)}, cmDir: cmDir, resources: resources, counts: make([]int, resources)}
	for i := range r.counts {
		r.counts[i] = 1000
	}
	fail := func(err error) (*reloadSubject, error) {
		r.close()
		return nil, err
	}
	link, swap, err := writeConfigMap(cmDir, r.manifest())
	if err != nil {
		return fail(err)
	}
	if err := swap(); err != nil {
		return fail(err)
	}
	if r.run.k, err = startKubelet(dir); err != nil {
		return fail(err)
	}
	args := []string{"run", "--manifest", link, "--device-plugin-dir", dir, "--listen", "",
		"--registration", "kubelet-socket", "--node-name", "bench-node"}
	if bin == b.bin {
		args = append(args, cdiArgs(dir)...)
	}
	if r.run.proc, err = startProc(filepath.Join(b.logs, tag+".log"), bin, args...); err != nil {
		return fail(err)
	}
	if _, err := waitAllListed(r.run.k, r.run.names, 120*time.Second); err != nil {
		return fail(err)
	}
	return r, nil
}

func (r *reloadSubject) manifest() string {
	return scaleManifest(r.resources, 0, func(i int) int { return r.counts[i] })
}

func (r *reloadSubject) close() {
	r.run.close()
	os.RemoveAll(r.cmDir)
}

// change swaps in a version where resource i has one device more or less,
// and returns the time from the ..data swap to the new device list on its
// stream. It fails if any resource registered again, or any resource but
// i got a ListAndWatch message, or i got more than one.
func (r *reloadSubject) change(i int) (time.Duration, error) {
	k := r.run.k
	if r.counts[i] == 1000 {
		r.counts[i] = 1001
	} else {
		r.counts[i] = 1000
	}
	want := r.counts[i]
	_, swap, err := writeConfigMap(r.cmDir, r.manifest())
	if err != nil {
		return 0, err
	}
	before := map[string]kubeletsim.Record{}
	for _, n := range r.run.names {
		before[n] = k.Record(n)
	}
	name := scaleName(i)
	start := time.Now()
	if err := swap(); err != nil {
		return 0, err
	}
	err = waitFor(k, 30*time.Second, name+"'s new device list", func(record func(string) kubeletsim.Record) bool {
		return len(record(name).Devices) == want
	})
	if err != nil {
		return 0, err
	}
	took := k.Record(name).ListAt.Sub(start)
	time.Sleep(300 * time.Millisecond) // anything else the reload did shows by now
	for _, n := range r.run.names {
		was, now := before[n], k.Record(n)
		wantLists := was.Lists
		if n == name {
			wantLists++
		}
		if now.Registrations != was.Registrations || now.Lists != wantLists || now.Endpoint != was.Endpoint {
			return 0, fmt.Errorf("changing %s: %s registered %d → %d times, got %d → %d lists (want %d), same connection %v",
				name, n, was.Registrations, now.Registrations, was.Lists, now.Lists, wantLists, now.Endpoint == was.Endpoint)
		}
	}
	return took, r.run.proc.alive()
}

// reload: a one-resource change in a 500-resource manifest, against the
// same change in a one-resource manifest, or with -versus against the
// older binary with the same 500 resources.
func (b *bench) reload() error {
	rounds := b.rounds(15, 3)
	big, err := b.startReloadSubject("reload-500", b.bin, 500)
	if err != nil {
		return err
	}
	defer big.close()
	baseTag, baseBin, baseResources, baseName := "reload-1", b.bin, 1, "one-resource manifest"
	if b.versus != "" {
		baseTag, baseBin, baseResources, baseName = "reload-500-versus", b.versus, 500, b.baseName()+", 500 resources"
	}
	small, err := b.startReloadSubject(baseTag, baseBin, baseResources)
	if err != nil {
		return err
	}
	defer small.close()
	var s series
	others := 0
	for round := range rounds {
		var took [2]time.Duration
		for _, who := range order(round) {
			var err error
			if who == 0 {
				took[0], err = big.change(round * 37 % 500)
			} else {
				took[1], err = small.change(round * 37 % baseResources)
			}
			if err != nil {
				return err
			}
		}
		others += 499
		s.add(ms(took[0]), ms(took[1]))
	}
	b.section("Reload", fmt.Sprintf("A ConfigMap-style update (new version written aside, `..data` symlink swapped by one rename) changing one resource's "+
		"device count, timed from the rename to the new list on that resource's ListAndWatch stream at the kubelet-like client. Host with 500 resources × "+
		"1,000 devices against the same host binary with one resource (baseline; with -versus, the older binary with the same 500). The reloader applies a ..data swap at once (no debounce). After each change the bench "+
		"checks every resource: no Register call, no new ListAndWatch message except the changed one (exactly one), same connection. "+
		"%d rounds, alternating.", rounds))
	f := s.figure("reload", "reload: one resource changed in 500 → new list on its stream (median)", "ms", baseName)
	f.Note = fmt.Sprintf("max %.1f ms; %d untouched-resource checks: 0 re-registrations, 0 extra ListAndWatch messages", maxOf(s.subject), others)
	b.publish(f)
	return nil
}
