package dra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	resourceapi "k8s.io/api/resource/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
	"k8s.io/dynamic-resource-allocation/resourceslice"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/utils/ptr"

	"simple-device-plugin/cdi"
	"simple-device-plugin/manifest"
)

// driver serves one api: dra resource: a kubeletplugin helper registered
// with the kubelet, the resource's slices, and its prepared claims.
type driver struct {
	name     string // the driver name
	resource string
	node     string
	dir      string // plugin data dir: socket and checkpoint
	cdi      *cdi.Dir
	client   kubernetes.Interface
	log      *slog.Logger
	metrics  *Metrics
	fail     func(error) // a fatal background error: the manager restarts the driver

	mu        sync.Mutex // guards what follows; prepare and unprepare hold it throughout
	res       *manifest.Resource
	unhealthy map[string]bool
	claims    map[string]Claim // the checkpoint, by claim UID

	helper *kubeletplugin.Helper
	slices *resourceslice.Controller

	// registered is what the kubelet last said of the registration. The
	// helper's RegistrationStatus is written by its gRPC handler without
	// a lock, so /readyz reads this instead.
	registered atomic.Bool
}

// sliceSyncDelay is how soon the slices are written again after someone
// else changed or deleted them. The library's default (30 s) left a node
// without slices for that long after every kubelet restart, as the kubelet
// wipes its node's slices when it starts; we are their only writer.
const sliceSyncDelay = time.Second

// start registers the driver with the kubelet and publishes its slices.
func (d *driver) start(ctx context.Context, registryDir string) error {
	if err := os.MkdirAll(d.dir, 0o750); err != nil {
		return fmt.Errorf("plugin dir of driver %s: %w", d.name, err)
	}
	claims, err := readCheckpoint(checkpointPath(d.dir))
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.claims = claims
	d.mu.Unlock()
	// A restarted driver still holds what its predecessor prepared.
	d.metrics.prepared.WithLabelValues(d.resource).Set(float64(len(claims)))
	helper, err := kubeletplugin.Start(ctx, d,
		kubeletplugin.DriverName(d.name),
		kubeletplugin.KubeClient(d.client),
		kubeletplugin.NodeName(d.node),
		kubeletplugin.RegistrarDirectoryPath(registryDir),
		kubeletplugin.PluginDataDirectoryPath(d.dir),
		// Health reaches the scheduler as device taints in the slices.
		kubeletplugin.HealthService(false),
		kubeletplugin.GRPCInterceptor(d.watchRegistration),
	)
	if err != nil {
		return fmt.Errorf("start DRA driver %s: %w", d.name, err)
	}
	d.helper = helper
	return d.publish(ctx)
}

// publish hands the current device list to the ResourceSlice controller,
// which writes it in the background. The controller is started here, not
// through the helper's PublishResources, for its sync delay.
func (d *driver) publish(ctx context.Context) error {
	d.mu.Lock()
	res, err := Resources(d.res, d.node, func(id string) bool { return d.unhealthy[id] })
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if d.slices != nil {
		d.slices.Update(&res)
		return nil
	}
	d.slices, err = resourceslice.StartController(ctx, resourceslice.Options{
		DriverName: d.name,
		KubeClient: d.client,
		Owner:      &resourceslice.Owner{APIVersion: "v1", Kind: "Node", Name: d.node},
		Resources:  &res,
		SyncDelay:  ptr.To(sliceSyncDelay),
		ErrorHandler: func(ctx context.Context, err error, msg string) {
			d.HandleError(ctx, recoverable{err}, msg) // the controller retries
		},
	})
	if err != nil {
		return fmt.Errorf("publish slices of %s: %w", d.name, err)
	}
	return nil
}

// recoverable marks an error the ResourceSlice controller retries.
type recoverable struct{ error }

func (e recoverable) Is(target error) bool { return target == kubeletplugin.ErrRecoverable }
func (e recoverable) Unwrap() error        { return e.error }

// update serves a new version of the resource (same driver).
func (d *driver) update(ctx context.Context, r *manifest.Resource, unhealthy map[string]bool) error {
	d.mu.Lock()
	d.res, d.unhealthy = r, unhealthy
	d.mu.Unlock()
	return d.publish(ctx)
}

// deleteSlices deletes the node's slices of driver.
func deleteSlices(ctx context.Context, client kubernetes.Interface, node, driver string) error {
	err := client.ResourceV1().ResourceSlices().DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{
		FieldSelector: fields.Set{resourceapi.ResourceSliceSelectorNodeName: node, resourceapi.ResourceSliceSelectorDriver: driver}.String(),
	})
	if err != nil {
		return fmt.Errorf("delete the slices of %s: %w", driver, err)
	}
	return nil
}

// halt unregisters the driver and stops writing its slices. It returns
// once no prepare or unprepare runs: gRPC's Stop does not wait for them,
// and a new driver is about to read the checkpoint they write.
func (d *driver) halt() {
	d.helper.Stop()
	if d.slices != nil {
		d.slices.Stop()
	}
	// An empty critical section: it waits for a running handler.
	d.mu.Lock()
	d.mu.Unlock()
}

// watchRegistration notes what the kubelet says of the registration.
func (d *driver) watchRegistration(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if s, ok := req.(*registerapi.RegistrationStatus); ok {
		d.registered.Store(s.PluginRegistered)
	}
	return handler(ctx, req)
}

// PrepareResourceClaims writes a CDI spec per claim and checkpoints it;
// a claim prepared before is answered again, its spec rewritten if it went
// (a reboot empties /var/run/cdi).
func (d *driver) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for _, c := range claims {
		devices, err := d.prepare(c)
		result := "ok"
		if err != nil {
			result = "error"
			d.log.Error("cannot prepare claim", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "err", err)
		} else {
			d.log.Info("claim prepared", "claim", c.Namespace+"/"+c.Name, "uid", c.UID, "devices", len(devices))
		}
		d.metrics.prepares.WithLabelValues(d.resource, "prepare", result).Inc()
		out[c.UID] = kubeletplugin.PrepareResult{Err: err, Devices: devices}
	}
	d.metrics.prepared.WithLabelValues(d.resource).Set(float64(len(d.claims)))
	return out, nil
}

func (d *driver) prepare(c *resourceapi.ResourceClaim) ([]kubeletplugin.Device, error) {
	requests, err := ClaimRequests(c, d.name, d.node)
	if err != nil {
		return nil, err
	}
	uid := string(c.UID)
	claim := Claim{UID: uid, Namespace: c.Namespace, Name: c.Name, Requests: requests}
	if old, ok := d.claims[uid]; ok && !sameRequests(old.Requests, requests) {
		return nil, fmt.Errorf("claim %s/%s was prepared with other devices (%v, now %v)", c.Namespace, c.Name, old.Requests, requests)
	}
	// The last line of defence against one device in two claims.
	for _, other := range d.claims {
		if other.UID == uid {
			continue
		}
		for _, ids := range other.Requests {
			for _, req := range requests {
				for _, id := range req {
					if slices.Contains(ids, id) {
						return nil, fmt.Errorf("device %s is already prepared for claim %s/%s", id, other.Namespace, other.Name)
					}
				}
			}
		}
	}
	spec, external, err := ClaimSpec(d.res, d.node, claim)
	if err != nil {
		return nil, err
	}
	// Checkpoint first: a crash after it leaves a spec to remove, never a
	// spec nobody knows about.
	if _, ok := d.claims[uid]; !ok {
		next := maps.Clone(d.claims)
		next[uid] = claim
		if err := writeCheckpoint(checkpointPath(d.dir), d.name, next); err != nil {
			return nil, err
		}
		d.claims = next
	}
	if err := d.cdi.WriteClaim(d.name, uid, spec); err != nil {
		return nil, err
	}
	var devices []kubeletplugin.Device
	for _, req := range slices.Sorted(maps.Keys(requests)) {
		for k, id := range requests[req] {
			dev := kubeletplugin.Device{Requests: []string{req}, PoolName: d.node, DeviceName: id}
			if k == 0 {
				// The request's edits are one CDI device; named once.
				dev.CDIDeviceIDs = append([]string{ClaimKind(d.name) + "=" + cdiDeviceName(uid, req)}, external[req]...)
			}
			devices = append(devices, dev)
		}
	}
	return devices, nil
}

func sameRequests(a, b map[string][]string) bool {
	return maps.EqualFunc(a, b, slices.Equal[[]string])
}

// UnprepareResourceClaims removes the claims' specs and forgets them. A
// claim not prepared here (or already unprepared) is fine.
func (d *driver) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		err := d.unprepare(string(c.UID))
		result := "ok"
		if err != nil {
			result = "error"
			d.log.Error("cannot unprepare claim", "claim", c.String(), "err", err)
		} else {
			d.log.Info("claim unprepared", "claim", c.Namespace+"/"+c.Name, "uid", c.UID)
		}
		d.metrics.prepares.WithLabelValues(d.resource, "unprepare", result).Inc()
		out[c.UID] = err
	}
	d.metrics.prepared.WithLabelValues(d.resource).Set(float64(len(d.claims)))
	return out, nil
}

func (d *driver) unprepare(uid string) error {
	if err := d.cdi.RemoveClaim(d.name, uid); err != nil {
		return err
	}
	if _, ok := d.claims[uid]; !ok {
		return nil
	}
	next := maps.Clone(d.claims)
	delete(next, uid)
	if err := writeCheckpoint(checkpointPath(d.dir), d.name, next); err != nil {
		return err
	}
	d.claims = next
	return nil
}

// HandleError gets the helper's background errors: publishing refused or
// failed (recoverable: the controller retries), or a gRPC server that
// stopped (fatal: the driver is restarted).
func (d *driver) HandleError(ctx context.Context, err error, msg string) {
	if errors.Is(err, kubeletplugin.ErrRecoverable) {
		d.metrics.publishErrors.WithLabelValues(d.resource).Inc()
		d.log.Warn("DRA driver: "+msg+"; retrying", "err", err)
		return
	}
	d.log.Error("DRA driver: "+msg+"; restarting the driver", "err", err)
	d.fail(fmt.Errorf("%s: %w", msg, err))
}

// WatchHealthStatus is not used: HealthService(false).
func (d *driver) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}

// pluginDir is where a driver's socket and checkpoint live.
func pluginDir(base, driver string) string { return filepath.Join(base, driver) }
