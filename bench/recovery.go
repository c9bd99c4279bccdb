package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"simple-device-plugin/internal/kubeletsim"
	"simple-device-plugin/manifest"
)

// subjectRun is a host or baseline process serving resources on dir,
// registered with k.
type subjectRun struct {
	proc  *proc
	dir   string
	k     *kubeletsim.Kubelet
	names []string
}

func (s *subjectRun) close() {
	if s.proc != nil {
		s.proc.stop(10 * time.Second)
	}
	if s.k != nil {
		s.k.Stop()
	}
	os.RemoveAll(s.dir)
}

// startScale starts the host or the baseline with resources × devices and
// waits until everything is registered.
func (b *bench) startScale(host bool, tag string, resources, devices int) (*subjectRun, error) {
	dir, err := tempDir("sdpb")
	if err != nil {
		return nil, err
	}
	s := &subjectRun{dir: dir, names: scaleNames(resources)}
	if s.k, err = startKubelet(dir); err != nil {
		s.close()
		return nil, err
	}
	manifestPath := filepath.Join(dir, "manifest.yaml")
	if err := os.WriteFile(manifestPath, []byte(scaleManifest(resources, devices, nil)), 0o644); err != nil {
		s.close()
		return nil, err
	}
	if host {
		s.proc, err = b.startHost(tag+"-host", dir, manifestPath)
	} else {
		s.proc, err = b.startBaseline(tag, dir, manifestPath, "-resources", fmt.Sprint(resources), "-devices", fmt.Sprint(devices))
	}
	if err != nil {
		s.close()
		return nil, err
	}
	if _, err := waitAllListed(s.k, s.names, 120*time.Second); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// kubeletDown is how long a restarting kubelet is away
// ($SDP_BENCH_KUBELET_DOWN, a Go duration; default 20 ms).
var kubeletDown = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SDP_BENCH_KUBELET_DOWN")); err == nil {
		return d
	}
	return 20 * time.Millisecond
}()

// restartKubelet does what a restarting kubelet does: the old one goes
// away (its connections close), the new one deletes every socket in the
// dir and listens on a new kubelet.sock. It returns the time from the
// deletion to the last resource's first device list at the new kubelet,
// and how many registrations beyond one per resource it saw.
func (s *subjectRun) restartKubelet() (time.Duration, int, error) {
	s.k.Stop()
	time.Sleep(kubeletDown) // the kubelet is down for a moment
	start := time.Now()
	if err := removeSockets(s.dir); err != nil {
		return 0, 0, err
	}
	k, err := startKubelet(s.dir)
	if err != nil {
		return 0, 0, err
	}
	s.k = k
	last, err := waitAllListed(k, s.names, 60*time.Second)
	if err != nil {
		return 0, 0, err
	}
	took := last.Sub(start)
	time.Sleep(100 * time.Millisecond) // let a duplicate registration show
	extra := 0
	for _, n := range s.names {
		extra += k.Registrations(n) - 1
	}
	return took, extra, s.proc.alive()
}

// deleteSocket removes one resource's socket behind its back and returns
// the time to that resource's first device list after registering again.
func (s *subjectRun) deleteSocket(resource string) (time.Duration, error) {
	before := s.k.Registrations(resource)
	sock := filepath.Join(s.dir, manifest.SocketName(resource))
	start := time.Now()
	if err := os.Remove(sock); err != nil {
		return 0, err
	}
	err := waitFor(s.k, 30*time.Second, resource+" registered again", func(record func(string) kubeletsim.Record) bool {
		r := record(resource)
		return r.Registrations > before && r.Endpoint != nil && !r.ListedAt.IsZero()
	})
	if err != nil {
		return 0, err
	}
	return s.k.Record(resource).ListedAt.Sub(start), nil
}

// recovery: kubelet restarts and deleted sockets, host against baseline.
func (b *bench) recovery() error {
	b.section("Recovery", "Kubelet restart: the registration server stops (its connections close), then every socket in the dir is deleted and a new "+
		"kubelet.sock listens; timed from the deletion to the last resource's first ListAndWatch message at the new server. "+
		"Deleted socket: one plugin's socket removed behind its back; timed to that resource's first ListAndWatch message after it registered again. "+
		"1,000 devices per resource. Baseline: the minimal plugin (fsnotify on the dir: re-register on a new kubelet.sock, recreate a deleted socket). "+
		"Rounds alternate host and baseline.")
	sizes := []int{3, 10, 500}
	if b.configs != "" {
		sizes = nil
		for _, c := range strings.Split(b.configs, ",") {
			var r, d int
			if _, err := fmt.Sscanf(c, "%dx%d", &r, &d); err != nil {
				return fmt.Errorf("-configs %q: %w", c, err)
			}
			sizes = append(sizes, r)
		}
	}
	for _, resources := range sizes {
		restarts := b.rounds(20, 3)
		deletions := b.rounds(20, 3)
		if resources == 500 {
			restarts = b.rounds(10, 2)
		}
		tag := fmt.Sprintf("recovery-%d", resources)
		host, err := b.startScale(true, tag, resources, 1000)
		if err != nil {
			return err
		}
		base, err := b.startScale(false, tag, resources, 1000)
		if err != nil {
			host.close()
			return err
		}
		subjects := []*subjectRun{host, base}
		var restart, deleted series
		var dups [2]int
		var err2 error
		for round := range restarts {
			var took [2]time.Duration
			for _, who := range order(round) {
				d, extra, err := subjects[who].restartKubelet()
				if err != nil {
					err2 = fmt.Errorf("kubelet restart, %d resources, subject %d: %w", resources, who, err)
					break
				}
				took[who], dups[who] = d, dups[who]+extra
			}
			if err2 != nil {
				break
			}
			restart.add(ms(took[0]), ms(took[1]))
		}
		// Deleted sockets: a different resource each round; the others
		// must not register again.
		var regsBefore [2]map[string]int
		for who, s := range subjects {
			regsBefore[who] = map[string]int{}
			for _, n := range s.names {
				regsBefore[who][n] = s.k.Registrations(n)
			}
		}
		victims := map[string]bool{}
		for round := 0; round < deletions && err2 == nil; round++ {
			victim := scaleName(round * 7 % resources)
			victims[victim] = true
			var took [2]time.Duration
			for _, who := range order(round) {
				d, err := subjects[who].deleteSocket(victim)
				if err != nil {
					err2 = fmt.Errorf("deleted socket, %d resources, subject %d: %w", resources, who, err)
					break
				}
				took[who] = d
				time.Sleep(20 * time.Millisecond)
			}
			deleted.add(ms(took[0]), ms(took[1]))
		}
		time.Sleep(200 * time.Millisecond)
		disturbed := 0
		for _, n := range host.names {
			if !victims[n] && host.k.Registrations(n) != regsBefore[0][n] {
				disturbed++
			}
		}
		host.close()
		base.close()
		if err2 != nil {
			return err2
		}
		fr := restart.figure("recovery", fmt.Sprintf("kubelet restart → all re-registered, %d resources (median)", resources), "ms", b.baseName())
		goal, limit := "< 50 ms", 50.0 // the goal for a few resources; many may take longer
		if resources == 500 {
			goal, limit = "< 1 s", 1000
		}
		fr = fr.withGoal(goal, fr.Value < limit)
		fr.Note = fmt.Sprintf("max %.1f ms; duplicate registrations: host %d, baseline %d", maxOf(restart.subject), dups[0], dups[1])
		fd := deleted.figure("recovery", fmt.Sprintf("deleted socket → that plugin re-registered, %d resources (median)", resources), "ms", b.baseName())
		fd = fd.withGoal("< 50 ms", fd.Value < 50)
		fd.Note = fmt.Sprintf("max %.1f ms; other resources that registered again: %d", maxOf(deleted.subject), disturbed)
		b.publish(fr, fd)
	}
	return nil
}

// order alternates which subject goes first.
func order(round int) []int {
	if round%2 == 1 {
		return []int{1, 0}
	}
	return []int{0, 1}
}
