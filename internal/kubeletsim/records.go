package kubeletsim

import (
	"context"
	"fmt"
	"strings"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Record is what the kubelet saw of one resource.
type Record struct {
	Registrations int                 // accepted registrations
	Refused       int                 // refused registrations
	ListedAt      time.Time           // first device list since the latest registration; zero until then
	Lists         int                 // device lists received, over every registration
	ListAt        time.Time           // arrival of the last device list
	Devices       []*pluginapi.Device // the last device list since the latest registration
	StreamErr     error               // why the latest stream ended; nil while it runs
	Endpoint      *Endpoint           // the connected plugin; nil when none
}

// connected reports whether a resource is connected and has sent its
// device list since it last registered.
func (r Record) connected() bool { return r.Endpoint != nil && !r.ListedAt.IsZero() }

func (k *Kubelet) recordLocked(resource string) *Record {
	r := k.records[resource]
	if r == nil {
		r = &Record{}
		k.records[resource] = r
	}
	return r
}

// notifyLocked wakes every WaitFor.
func (k *Kubelet) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// WaitFor waits until cond holds, or ctx ends. cond runs under the
// kubelet's lock, at once and after every change; it reads what the
// kubelet saw through record and must not call the Kubelet's methods.
func (k *Kubelet) WaitFor(ctx context.Context, cond func(record func(resource string) Record) bool) error {
	record := func(resource string) Record {
		if r := k.records[resource]; r != nil {
			return *r
		}
		return Record{}
	}
	for {
		k.mu.Lock()
		ok := cond(record)
		ch := k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// WaitRegistered waits until every named resource is connected and has
// sent its device list since it last registered.
func (k *Kubelet) WaitRegistered(ctx context.Context, names []string) error {
	err := k.WaitFor(ctx, func(record func(string) Record) bool {
		for _, n := range names {
			if !record(n).connected() {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("waiting for %d resources to register: %w (still waiting for %s)", len(names), err, k.missing(names))
	}
	return nil
}

// missing names the resources not yet connected and listed, the first
// few of them: a benchmark waits for hundreds.
func (k *Kubelet) missing(names []string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, n := range names {
		if r := k.records[n]; r == nil || !r.connected() {
			out = append(out, n)
		}
	}
	const most = 5
	if len(out) > most {
		return fmt.Sprintf("%s and %d more", strings.Join(out[:most], ", "), len(out)-most)
	}
	return strings.Join(out, ", ")
}

// Record returns a copy of what the kubelet saw of a resource.
func (k *Kubelet) Record(resource string) Record {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r := k.records[resource]; r != nil {
		return *r
	}
	return Record{}
}

// Endpoint returns the connected plugin of a resource, or nil.
func (k *Kubelet) Endpoint(resource string) *Endpoint { return k.Record(resource).Endpoint }

// Devices returns the last device list a resource sent.
func (k *Kubelet) Devices(resource string) []*pluginapi.Device { return k.Record(resource).Devices }

// Lists counts the device lists a resource sent.
func (k *Kubelet) Lists(resource string) int { return k.Record(resource).Lists }

// Registrations counts the accepted registrations of a resource.
func (k *Kubelet) Registrations(resource string) int { return k.Record(resource).Registrations }
