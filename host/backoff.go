package host

import (
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff with full jitter on the upper
// half: each delay is in [d/2, d), d doubling from Initial up to Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	// Stable is how long a plugin must run before its backoff resets.
	Stable time.Duration

	attempt int
}

// DefaultBackoff restarts quickly at first and at most every 30 s.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 100 * time.Millisecond, Max: 30 * time.Second, Stable: time.Minute}
}

// Next returns the delay before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	d := b.Initial
	for i := 0; i < b.attempt && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	b.attempt++
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half)
}

// Reset starts again from Initial.
func (b *Backoff) Reset() { b.attempt = 0 }
