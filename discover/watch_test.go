package discover

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"
)

// noRescan leaves fsnotify alone to see changes, so a test that passes
// with it proves the events, not the safety net.
const noRescan = time.Hour

// waitLimit is far beyond the one second target: these tests check what
// is reported, TestHotplugLatency how fast.
const waitLimit = 10 * time.Second

// recorder keeps what a Watcher reported.
type recorder struct {
	mu    sync.Mutex
	last  Result
	calls int
	poke  chan struct{}
}

func (r *recorder) changed(res Result) {
	r.mu.Lock()
	r.last, r.calls = res, r.calls+1
	r.mu.Unlock()
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

func (r *recorder) state() (Result, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, r.calls
}

// waitFor returns the first reported result that cond accepts.
func (r *recorder) waitFor(t testing.TB, what string, cond func(Result) bool) Result {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		res, calls := r.state()
		if calls > 0 && cond(res) {
			return res
		}
		select {
		case <-r.poke:
		case <-deadline.C:
			t.Fatalf("waited %s for %s; last result (of %d):\n%s", waitLimit, what, calls, dump(res))
		}
	}
}

func (r *recorder) waitPaths(t testing.TB, want ...string) Result {
	t.Helper()
	return r.waitFor(t, fmt.Sprintf("devices %v", want), func(res Result) bool {
		return slices.Equal(devicePaths(res), want)
	})
}

// startWatcher runs w until the test ends, then checks that Run returns
// nil promptly; it waits for the first result.
func startWatcher(t *testing.T, w *Watcher) *recorder {
	t.Helper()
	rec := &recorder{poke: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, rec.changed) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return after its context ended")
		}
	})
	rec.waitFor(t, "the first result", func(Result) bool { return true })
	return rec
}

func TestWatcherHotplug(t *testing.T) {
	r := newRoot(t)
	r.char("/dev/null", 1, 3)
	w := NewWatcher(r.dir, Spec{Paths: []string{"/dev/ttyUSB*"}}, 0, noRescan)
	rec := startWatcher(t, w)
	if res, calls := rec.state(); calls != 1 || !res.Equal(Result{}) {
		t.Fatalf("first result (call %d):\n%s", calls, dump(res))
	}

	r.char("/dev/ttyUSB0", 188, 0)
	rec.waitPaths(t, "/dev/ttyUSB0")
	r.char("/dev/ttyUSB1", 188, 1)
	rec.waitPaths(t, "/dev/ttyUSB0", "/dev/ttyUSB1")
	r.remove("/dev/ttyUSB0")
	rec.waitPaths(t, "/dev/ttyUSB1")

	// What does not change the result is not reported: the file is seen
	// (the dir is watched), then the node, in one more call.
	_, before := rec.state()
	r.file("/dev/unrelated", "")
	r.char("/dev/ttyUSB2", 188, 2)
	rec.waitPaths(t, "/dev/ttyUSB1", "/dev/ttyUSB2")
	if _, after := rec.state(); after != before+1 {
		t.Errorf("%d calls for one change", after-before)
	}
	if err := w.Degraded(); err != nil {
		t.Errorf("Degraded: %v", err)
	}
}

// The pattern's directories appear after the watcher starts, are removed
// and made again: each is watched as it comes.
func TestWatcherNewDirectories(t *testing.T) {
	r := newRoot(t)
	rec := startWatcher(t, NewWatcher(r.dir, Spec{Paths: []string{"/dev/bus/usb/*/*"}}, 0, noRescan))

	r.char("/dev/bus/usb/001/001", 189, 0)
	rec.waitPaths(t, "/dev/bus/usb/001/001")
	r.char("/dev/bus/usb/002/001", 189, 128)
	rec.waitPaths(t, "/dev/bus/usb/001/001", "/dev/bus/usb/002/001")
	r.char("/dev/bus/usb/002/004", 189, 131)
	rec.waitPaths(t, "/dev/bus/usb/001/001", "/dev/bus/usb/002/001", "/dev/bus/usb/002/004")
	r.remove("/dev/bus/usb/001")
	rec.waitPaths(t, "/dev/bus/usb/002/001", "/dev/bus/usb/002/004")
	r.char("/dev/bus/usb/001/005", 189, 4)
	rec.waitPaths(t, "/dev/bus/usb/001/005", "/dev/bus/usb/002/001", "/dev/bus/usb/002/004")
	// Made again at once, the dir often gets the old one's inode.
	r.remove("/dev/bus/usb/002")
	r.mkdir("/dev/bus/usb/002")
	rec.waitPaths(t, "/dev/bus/usb/001/005")
	r.char("/dev/bus/usb/002/007", 189, 134)
	rec.waitPaths(t, "/dev/bus/usb/001/005", "/dev/bus/usb/002/007")
	r.remove("/dev/bus")
	rec.waitPaths(t)
	r.char("/dev/bus/usb/003/001", 189, 256)
	rec.waitPaths(t, "/dev/bus/usb/003/001")
}

// A link matched stays while its target goes: the target's dir is watched.
func TestWatcherLinkTarget(t *testing.T) {
	r := newRoot(t)
	r.char("/dev/ttyUSB0", 188, 0)
	r.link("/dev/serial/by-id/usb-FTDI_A9X1-if00-port0", "../../ttyUSB0")
	rec := startWatcher(t, NewWatcher(r.dir, Spec{Paths: []string{"/dev/serial/by-id/*"}}, 0, noRescan))
	rec.waitPaths(t, "/dev/serial/by-id/usb-FTDI_A9X1-if00-port0")
	r.remove("/dev/ttyUSB0")
	res := rec.waitPaths(t)
	want := []Problem{{"/dev/serial/by-id/usb-FTDI_A9X1-if00-port0", "dangling symlink to ../../ttyUSB0"}}
	if !slices.Equal(res.Problems, want) {
		t.Errorf("problems %v, want %v", res.Problems, want)
	}
}

// A directory match changes with the nodes under it.
func TestWatcherDirectoryMatch(t *testing.T) {
	r := newRoot(t)
	r.char("/dev/snd/controlC0", 116, 0)
	rec := startWatcher(t, NewWatcher(r.dir, Spec{Paths: []string{"/dev/snd"}}, 0, noRescan))
	nodes := func(want ...string) func(Result) bool {
		return func(res Result) bool {
			var got []string
			for _, d := range res.Devices {
				for _, n := range d.Nodes {
					got = append(got, n.Path)
				}
			}
			return slices.Equal(got, want)
		}
	}
	r.char("/dev/snd/pcmC0D0p", 116, 16)
	rec.waitFor(t, "a new node", nodes("/dev/snd/controlC0", "/dev/snd/pcmC0D0p"))
	r.char("/dev/snd/seq/seq0", 116, 1)
	rec.waitFor(t, "a node in a new subdir", nodes("/dev/snd/controlC0", "/dev/snd/pcmC0D0p", "/dev/snd/seq/seq0"))
	r.remove("/dev/snd")
	rec.waitFor(t, "the directory gone", nodes())
}

// A burst of 200 creates and removes from several goroutines while the
// CPUs are busy ends in the right result, with fsnotify alone.
func TestWatcherBurst(t *testing.T) {
	r := newRoot(t)
	r.char("/dev/null", 1, 3) // skips here if nodes cannot be made
	rec := startWatcher(t, NewWatcher(r.dir, Spec{Paths: []string{"/dev/ttyB*"}}, 0, noRescan))

	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		load.Go(func() {
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
			}
		})
	}
	// Each of 4 writers creates 40 nodes and removes every fourth: 200
	// operations, 120 nodes left.
	var want []string
	var writers sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 4 {
		writers.Go(func() {
			for i := range 40 {
				n := g*40 + i
				path := r.at(fmt.Sprintf("/dev/ttyB%03d", n))
				if err := mknod(path, unix.S_IFCHR, 240, uint32(n)); err != nil {
					errs <- err
					return
				}
				if i%4 == 0 {
					if err := os.Remove(path); err != nil {
						errs <- err
						return
					}
				}
			}
		})
		for i := range 40 {
			if i%4 != 0 {
				want = append(want, fmt.Sprintf("/dev/ttyB%03d", g*40+i))
			}
		}
	}
	writers.Wait()
	close(stopLoad)
	load.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(want)
	rec.waitPaths(t, want...)
}

// Without fsnotify the rescan still finds changes, and Degraded says why
// they come late.
func TestWatcherWithoutFsnotify(t *testing.T) {
	r := newRoot(t)
	w := NewWatcher(r.dir, Spec{Paths: []string{"/dev/ttyUSB*"}}, 0, 20*time.Millisecond)
	w.newNotify = func() (*fsnotify.Watcher, error) { return nil, errors.New("too many open files") }
	rec := startWatcher(t, w)
	r.char("/dev/ttyUSB0", 188, 0)
	rec.waitPaths(t, "/dev/ttyUSB0")
	if err := w.Degraded(); err == nil || !strings.Contains(err.Error(), "too many open files") {
		t.Errorf("Degraded: %v, want the fsnotify error", err)
	}
}

func TestWatcherUnusableSpec(t *testing.T) {
	r := newRoot(t)
	err := NewWatcher(r.dir, Spec{Paths: []string{"dev/tty*"}}, 0, 0).Run(context.Background(), func(Result) {
		t.Error("changed called for an unusable spec")
	})
	if err == nil {
		t.Error("Run: no error for a relative pattern")
	}
}

// Hotplug latency, mknod to the changed call; logged, not asserted (the
// machine may be busy).
func TestHotplugLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 20 hotplugs")
	}
	r := newRoot(t)
	rec := startWatcher(t, NewWatcher(r.dir, Spec{Paths: []string{"/dev/ttyL*"}}, 0, noRescan))
	var took []time.Duration
	var want []string
	for i := range 20 {
		path := fmt.Sprintf("/dev/ttyL%02d", i)
		want = append(want, path)
		start := time.Now()
		r.char(path, 240, uint32(i))
		rec.waitPaths(t, want...)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	t.Logf("hotplug latency over %d: median %s, max %s", len(took), took[len(took)/2], took[len(took)-1])
}
