package nodesync

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"simple-device-plugin/internal/syncbuf"
)

// waitTimeout turns a state that never comes into a failure; a check
// takes milliseconds, so it only has to outlast a slow, shared machine.
const waitTimeout = 20 * time.Second

// configMap is a directory laid out as the kubelet mounts a ConfigMap:
// manifest.yaml -> ..data/manifest.yaml, ..data -> ..<timestamp>, and an
// update swaps ..data with a rename.
type configMap struct {
	dir     string
	version int
}

func newConfigMap(t *testing.T, content string) *configMap {
	t.Helper()
	c := &configMap{dir: t.TempDir()}
	c.update(t, content)
	if err := os.Symlink(filepath.Join("..data", "manifest.yaml"), c.path()); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *configMap) path() string { return filepath.Join(c.dir, "manifest.yaml") }

// update publishes content as the kubelet does: a new timestamped dir,
// then ..data swapped to it atomically.
func (c *configMap) update(t *testing.T, content string) {
	t.Helper()
	c.version++
	version := fmt.Sprintf("..2026_%02d", c.version)
	if err := os.Mkdir(filepath.Join(c.dir, version), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, version, "manifest.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(version, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// fakeValidate refuses a manifest containing "invalid", and decides
// nothing while missing is set, as a validator binary not installed yet.
type fakeValidator struct {
	mu      sync.Mutex
	missing bool
	calls   int
}

func (f *fakeValidator) validate(_ context.Context, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.missing {
		return fmt.Errorf("validator /host/sdp: %w (is the node service installed on this node?)", os.ErrNotExist)
	}
	if bytes.Contains(data, []byte("invalid")) {
		return &InvalidError{Problems: []string{"<stdin>:3:5: resources[0].count: invalid", "<stdin>:4:5: resources[0].env: invalid"}}
	}
	return nil
}

func (f *fakeValidator) setMissing(missing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.missing = missing
}

// startSyncer runs s until the test ends. A short poll is only a safety
// net; the tests wait for state, not for time.
func startSyncer(t *testing.T, s *Syncer) *syncbuf.Buffer {
	t.Helper()
	logs := &syncbuf.Buffer{}
	s.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if s.Poll == 0 {
		s.Poll = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return logs
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool, logs *syncbuf.Buffer) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s\nlogs:\n%s", what, logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitForContent(t *testing.T, path, want string, logs *syncbuf.Buffer) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s holds %q", path, want), func() bool {
		got, err := os.ReadFile(path)
		return err == nil && string(got) == want
	}, logs)
}

// count is sdp_sync_total{result}, as /metrics shows it.
func (s *Syncer) count(result string) float64 {
	return s.metricValue("sdp_sync_total", result)
}

// metricValue reads a metric from the registry (of the result label's
// series, for the counter).
func (s *Syncer) metricValue(name, result string) float64 {
	s.setup()
	families, err := s.metrics.registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if result == "" {
				return m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// waitForCount waits until the result's counter reaches at least n.
func waitForCount(t *testing.T, s *Syncer, result string, n float64, logs *syncbuf.Buffer) {
	t.Helper()
	waitFor(t, fmt.Sprintf("sdp_sync_total{result=%q} >= %v", result, n), func() bool { return s.count(result) >= n }, logs)
}

func checkReady(t *testing.T, s *Syncer, want bool, reasonPart string) {
	t.Helper()
	ok, reason := s.Ready()
	if ok != want || !strings.Contains(reason, reasonPart) {
		t.Errorf("Ready() = %v, %q; want %v and a reason containing %q", ok, reason, want, reasonPart)
	}
	if gauge := s.metricValue("sdp_sync_in_sync", ""); (gauge == 1) != want {
		t.Errorf("sdp_sync_in_sync = %v, want ready %v", gauge, want)
	}
}

func newTarget(t *testing.T) string {
	return filepath.Join(t.TempDir(), "manifest.yaml")
}

// The whole life of a ConfigMap: the first version written, updates by
// ..data swap written, an invalid one refused once and the last good one
// kept, then a valid one written again.
func TestSyncFollowsTheConfigMap(t *testing.T) {
	cm := newConfigMap(t, "version: 1\n")
	target := newTarget(t)
	v := &fakeValidator{}
	s := &Syncer{Source: cm.path(), Target: target, Validate: v.validate}
	logs := startSyncer(t, s)

	waitForContent(t, target, "version: 1\n", logs)
	waitFor(t, "ready", func() bool { ok, _ := s.Ready(); return ok }, logs)
	checkReady(t, s, true, "")
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("target mode: %v, %v; want 0644", fi.Mode(), err)
	}
	if s.metricValue("sdp_sync_last_success_timestamp_seconds", "") == 0 {
		t.Error("sdp_sync_last_success_timestamp_seconds is 0 after a write")
	}

	cm.update(t, "version: 2\n")
	waitForContent(t, target, "version: 2\n", logs)
	waitForCount(t, s, resultWritten, 2, logs)

	cm.update(t, "version: 3 invalid\n")
	waitForCount(t, s, resultInvalid, 1, logs)
	checkReady(t, s, false, "the source manifest is invalid (2 problems)")
	// Several polls later the same bad version is still counted and
	// logged once, and the last good manifest stays.
	v.mu.Lock()
	calls := v.calls
	v.mu.Unlock()
	waitFor(t, "three more checks", func() bool { v.mu.Lock(); defer v.mu.Unlock(); return v.calls >= calls+3 }, logs)
	if n := s.count(resultInvalid); n != 1 {
		t.Errorf("sdp_sync_total{result=invalid} = %v after several polls, want 1", n)
	}
	if n := strings.Count(logs.String(), "resources[0].count: invalid"); n != 1 {
		t.Errorf("the problem was logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `problem="<stdin>:4:5: resources[0].env: invalid"`) {
		t.Errorf("each problem has a log line of its own:\n%s", logs)
	}
	if got, _ := os.ReadFile(target); string(got) != "version: 2\n" {
		t.Errorf("target after an invalid source: %q, want the last good one", got)
	}
	checkReady(t, s, false, "invalid")

	cm.update(t, "version: 4\n")
	waitForContent(t, target, "version: 4\n", logs)
	waitFor(t, "ready again", func() bool { ok, _ := s.Ready(); return ok }, logs)
	checkReady(t, s, true, "")

	// No temporary file is left beside the target.
	entries, _ := os.ReadDir(filepath.Dir(target))
	if len(entries) != 1 {
		t.Errorf("target dir holds %v, want the manifest only", entries)
	}
}

// Without a validator (the node service is not installed yet) nothing is
// written; the reason is logged once, and the next poll that finds the
// validator writes.
func TestSyncWaitsForTheValidator(t *testing.T) {
	cm := newConfigMap(t, "version: 1\n")
	target := newTarget(t)
	v := &fakeValidator{missing: true}
	s := &Syncer{Source: cm.path(), Target: target, Validate: v.validate}
	logs := startSyncer(t, s)

	waitForCount(t, s, resultError, 3, logs)
	checkReady(t, s, false, "is the node service installed")
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("target written without a validator: %v", err)
	}
	if n := strings.Count(logs.String(), "is the node service installed"); n != 1 {
		t.Errorf("logged %d times, want once per state change:\n%s", n, logs)
	}

	v.setMissing(false)
	waitForContent(t, target, "version: 1\n", logs)
	waitFor(t, "ready", func() bool { ok, _ := s.Ready(); return ok }, logs)
}

// A target edited or removed by someone else is restored: the ConfigMap
// wins. The target's directory is watched, so this does not wait for the
// poll (set long here to show it).
func TestSyncRestoresTheTarget(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, target string)
	}{
		{"edited in place", func(t *testing.T, target string) {
			if err := os.WriteFile(target, []byte("edited by an admin\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by an editor", func(t *testing.T, target string) {
			tmp := target + ".swp"
			if err := os.WriteFile(tmp, []byte("edited by an admin\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, target); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed", func(t *testing.T, target string) {
			if err := os.Remove(target); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cm := newConfigMap(t, "version: 1\n")
			target := newTarget(t)
			s := &Syncer{Source: cm.path(), Target: target, Validate: (&fakeValidator{}).validate, Poll: time.Hour}
			logs := startSyncer(t, s)
			waitForContent(t, target, "version: 1\n", logs)
			waitForCount(t, s, resultWritten, 1, logs)

			tc.change(t, target)
			waitForCount(t, s, resultWritten, 2, logs)
			waitForContent(t, target, "version: 1\n", logs)
		})
	}
}

// A target that already holds the source is left alone: not rewritten,
// so its inode and modification time stay, and the service sees no event.
func TestSyncLeavesAnEqualTargetAlone(t *testing.T) {
	cm := newConfigMap(t, "version: 1\n")
	target := newTarget(t)
	if err := os.WriteFile(target, []byte("version: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(target, old, old); err != nil {
		t.Fatal(err)
	}
	before := statTarget(t, target)
	v := &fakeValidator{}
	s := &Syncer{Source: cm.path(), Target: target, Validate: v.validate}
	logs := startSyncer(t, s)

	waitForCount(t, s, resultUnchanged, 1, logs)
	checkReady(t, s, true, "")
	// The same content published again (a new ..data swap) and a few
	// polls: still no write.
	cm.update(t, "version: 1\n")
	waitForCount(t, s, resultUnchanged, 4, logs)
	if after := statTarget(t, target); after != before {
		t.Errorf("target rewritten: before %+v, after %+v", before, after)
	}
	if n := s.count(resultWritten); n != 0 {
		t.Errorf("sdp_sync_total{result=written} = %v, want 0", n)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.calls != 0 {
		t.Errorf("validated %d times an unchanged manifest, want never", v.calls)
	}
}

type fileStamp struct {
	inode uint64
	mtime time.Time
}

func statTarget(t *testing.T, path string) fileStamp {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileStamp{inode: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime()}
}

// A write that fails (here: a directory stands where the target goes) is
// an error, leaves no temporary file, and the syncer is not ready.
func TestSyncReportsAFailedWrite(t *testing.T) {
	cm := newConfigMap(t, "version: 1\n")
	dir := t.TempDir()
	target := filepath.Join(dir, "manifest.yaml")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	// No poll: nothing may try again while the dir is listed.
	s := &Syncer{Source: cm.path(), Target: target, Validate: (&fakeValidator{}).validate, Poll: time.Hour}
	logs := startSyncer(t, s)
	waitForCount(t, s, resultError, 1, logs)
	checkReady(t, s, false, "cannot write the target")
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("target dir holds %v, want no temporary file left", entries)
	}
}

// Ready before the first check says so rather than claiming success.
func TestReadyBeforeRun(t *testing.T) {
	s := &Syncer{Source: "a", Target: "b"}
	if ok, reason := s.Ready(); ok || reason != "not checked yet" {
		t.Errorf("Ready() = %v, %q", ok, reason)
	}
}
