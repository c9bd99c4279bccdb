package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Soak settings (see the Makefile's soak targets). Without them the soak
// tests run a smoke version of a few seconds, as part of `make e2e`.
const (
	soakDurationEnv = "SOAK_DURATION"
	// soakStreamsEnv is how many ListAndWatch streams the churn opens.
	soakStreamsEnv = "SOAK_STREAMS"
)

// soakDuration is SOAK_DURATION, or smoke when it is unset.
func soakDuration(t testing.TB, smoke time.Duration) time.Duration {
	t.Helper()
	return soakSetting(t, soakDurationEnv, smoke, time.ParseDuration, "a positive duration such as 30s")
}

// soakStreams is SOAK_STREAMS, or smoke when it is unset.
func soakStreams(t testing.TB, smoke int) int {
	t.Helper()
	return soakSetting(t, soakStreamsEnv, smoke, strconv.Atoi, "a positive integer")
}

// soakSetting reads the positive value of env with parse, or returns smoke
// when env is unset; anything else fails t, saying what it wants.
func soakSetting[T int | time.Duration](t testing.TB, env string, smoke T, parse func(string) (T, error), want string) T {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		return smoke
	}
	n, err := parse(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want %s", env, v, want)
	}
	return n
}

// procUsage is what a leak check compares for the host process.
type procUsage struct {
	goroutines int // go_goroutines from its /metrics
	fds        int // entries of /proc/PID/fd
	sockets    int // our sockets in the plugin dir
}

func (u procUsage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d sockets", u.goroutines, u.fds, u.sockets)
}

// pid is the host's process id.
func (h *host) pid() int { return h.cmd.Process.Pid }

// usage measures the host process now.
func (h *host) usage(t testing.TB) procUsage {
	t.Helper()
	g, ok, err := h.metric("go_goroutines")
	if err != nil || !ok {
		t.Fatalf("go_goroutines from /metrics: found %v, %v", ok, err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", h.pid()))
	if err != nil {
		t.Fatalf("open fds of the host: %v", err)
	}
	return procUsage{goroutines: int(g), fds: len(fds), sockets: pluginSocketCount(t)}
}

// pluginSocketCount counts the sockets in the plugin dir, the kubelet's aside.
func pluginSocketCount(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir(pluginDir)
	if err != nil {
		if os.IsNotExist(err) {
			return 0
		}
		t.Fatalf("read %s: %v", pluginDir, err)
	}
	n := 0
	for _, e := range entries {
		if e.Type()&os.ModeSocket != 0 && e.Name() != "kubelet.sock" {
			n++
		}
	}
	return n
}

// steadyEvery and steadyReads define a steady host: steadyReads readings
// steadyEvery apart, all the same.
const (
	steadyEvery = 50 * time.Millisecond
	steadyReads = 4
)

// steadyUsage waits until the host's usage reads the same several times in
// a row and returns it: a baseline taken while a registration or a probe's
// request is still in flight would be too high and hide a leak.
func (h *host) steadyUsage(t testing.TB) procUsage {
	t.Helper()
	var last procUsage
	same := 0
	_, ok, why := pollEach(steadyEvery, registerTimeout, func() (bool, string) {
		u := h.usage(t)
		if u == last {
			same++
		} else {
			last, same = u, 1
		}
		return same >= steadyReads, fmt.Sprintf("still changing: last %v", u)
	})
	if !ok {
		t.Fatalf("waited %v for the host's usage to settle: %s", registerTimeout, why)
	}
	return last
}

// settledUsage waits up to timeout for the host's goroutines and fds to
// come back within slack of base and its sockets to be exactly base's, and
// returns the last measurement and whether they did.
func (h *host) settledUsage(t testing.TB, base, slack procUsage, timeout time.Duration) (procUsage, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		now := h.usage(t)
		if now.goroutines <= base.goroutines+slack.goroutines && now.fds <= base.fds+slack.fds && now.sockets == base.sockets {
			return now, true
		}
		if time.Now().After(deadline) {
			return now, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkHostNoLeak fails t when the host's usage does not come back to base.
func (h *host) checkHostNoLeak(t testing.TB, what string, base, slack procUsage) procUsage {
	t.Helper()
	after, ok := h.settledUsage(t, base, slack, registerTimeout)
	t.Logf("%s: host before %v, after %v", what, base, after)
	if !ok {
		t.Errorf("%s: the host's %v did not come back to %v (slack: %d goroutines, %d fds)", what, after, base, slack.goroutines, slack.fds)
	}
	return after
}

// logRecord is one JSON log line of the host.
type logRecord map[string]any

func (r logRecord) str(key string) string {
	switch v := r[key].(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// records parses the host's JSON logs (other lines, such as a race
// report, are skipped).
func (h *host) records() []logRecord {
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(h.logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// logMatch describes a log line: its level, and substrings of its fields.
type logMatch struct {
	level  string            // INFO, WARN, ERROR; empty: any
	fields map[string]string // key -> substring of the value ("msg" included)
}

func (m logMatch) String() string {
	return fmt.Sprintf("level=%q %v", m.level, m.fields)
}

func (m logMatch) matches(r logRecord) bool {
	if m.level != "" && r.str("level") != m.level {
		return false
	}
	for k, v := range m.fields {
		if !strings.Contains(r.str(k), v) {
			return false
		}
	}
	return true
}

// logged is a condition: the host has logged a line matching m (at or
// after line from, an index into records()).
func (h *host) logged(from int, m logMatch) condition {
	return func() (bool, string) {
		recs := h.records()
		for _, r := range recs[min(from, len(recs)):] {
			if m.matches(r) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no log line %v among %d new lines", m, len(recs)-min(from, len(recs)))
	}
}

// logCount is how many lines of the host's log so far: the start of what
// happens next.
func (h *host) logCount() int { return len(h.records()) }
