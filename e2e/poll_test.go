package e2e

import (
	"testing"
	"time"
)

// A condition reports whether it holds and, when it does not, why.
type condition func() (ok bool, why string)

// pollEvery is how often conditions are polled: fast enough to time
// re-registrations in milliseconds, cheap enough for GetCapacity.
const pollEvery = 2 * time.Millisecond

// poll checks cond every pollEvery until it holds or timeout passes. It
// returns how long it took, whether cond held, and cond's last reason.
func poll(timeout time.Duration, cond condition) (time.Duration, bool, string) {
	return pollEach(pollEvery, timeout, cond)
}

// pollEach is poll with its own interval (the benchmarks poll faster).
func pollEach(every, timeout time.Duration, cond condition) (time.Duration, bool, string) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return time.Since(start), true, ""
		}
		if time.Now().After(deadline) {
			return time.Since(start), false, why
		}
		time.Sleep(every)
	}
}

// eventually waits until cond holds and returns how long that took; after
// timeout it fails t, saying what it waited for and why it never held.
func eventually(t testing.TB, timeout time.Duration, what string, cond condition) time.Duration {
	t.Helper()
	took, ok, why := poll(timeout, cond)
	if !ok {
		t.Fatalf("waited %v for %s: %s", timeout.Round(time.Millisecond), what, why)
	}
	return took
}

// holds checks that cond stays true for the whole window: the way to show
// that something does NOT happen (a re-registration, a capacity change).
func holds(t testing.TB, window time.Duration, what string, cond condition) {
	t.Helper()
	deadline := time.Now().Add(window)
	for {
		if ok, why := cond(); !ok {
			t.Fatalf("%s stopped holding: %s", what, why)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
