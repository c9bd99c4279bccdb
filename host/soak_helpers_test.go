package host_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Soak settings. Without them the soak tests run a smoke version of a few
// seconds (part of `make test`); `make soak` and `make soak-short` set
// them. SOAK_DURATION is how long the storm and the flapping last;
// SOAK_STREAMS how many ListAndWatch streams the churn opens.
const (
	soakDurationEnv = "SOAK_DURATION"
	soakStreamsEnv  = "SOAK_STREAMS"
)

// soakDuration is SOAK_DURATION, or smoke when it is unset.
func soakDuration(t *testing.T, smoke time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(soakDurationEnv)
	if v == "" {
		return smoke
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", soakDurationEnv, v)
	}
	return d
}

// soakCount is the integer env var name, or smoke when it is unset.
func soakCount(t *testing.T, name string, smoke int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return smoke
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// openFDs counts the open file descriptors of this process.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("count open fds: %v", err)
	}
	return len(entries) - 1 // ReadDir's own descriptor
}

// usage is what a leak check compares.
type usage struct {
	goroutines, fds int
}

func (u usage) String() string { return fmt.Sprintf("%d goroutines, %d fds", u.goroutines, u.fds) }

func measure(t *testing.T) usage {
	t.Helper()
	return usage{goroutines: runtime.NumGoroutine(), fds: openFDs(t)}
}

// settle waits up to timeout for goroutines and fds to come back within
// slack of base (connections and handlers end asynchronously), and returns
// the last measurement and whether it did.
func settle(t *testing.T, base usage, slack usage, timeout time.Duration) (usage, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		now := measure(t)
		if now.goroutines <= base.goroutines+slack.goroutines && now.fds <= base.fds+slack.fds {
			return now, true
		}
		if time.Now().After(deadline) {
			return now, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// steady waits until goroutines and fds stop changing (four readings in a
// row the same), and returns them: the baseline once warm-up work ends.
func steady(t *testing.T) usage {
	t.Helper()
	deadline := time.Now().Add(eventually)
	last, same := measure(t), 0
	for same < 3 {
		time.Sleep(20 * time.Millisecond) // between readings, not waiting for an event
		now := measure(t)
		if now != last {
			last, same = now, 0
		} else {
			same++
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines and fds never settled: %v", now)
		}
	}
	return last
}

// checkNoLeak compares usage now with base, after letting it settle, and
// fails t (with a goroutine dump) if it did not come back.
func checkNoLeak(t *testing.T, what string, base, slack usage) usage {
	t.Helper()
	after, ok := settle(t, base, slack, eventually)
	t.Logf("%s: before %v, after %v", what, base, after)
	if !ok {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%s: %v did not come back to %v (slack %v); goroutines:\n%s", what, after, base, slack, buf)
	}
	return after
}
