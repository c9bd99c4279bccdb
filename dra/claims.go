package dra

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	resourceapi "k8s.io/api/resource/v1"
	specs "tags.cncf.io/container-device-interface/specs-go"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"

	"simple-device-plugin/cdi"
	"simple-device-plugin/internal/atomicfile"
	"simple-device-plugin/manifest"
)

// CheckpointFile is the name of a driver's checkpoint in its plugin dir.
const CheckpointFile = "checkpoint.json"

// Claim is what a driver prepared for one ResourceClaim: enough to
// unprepare it after a restart, when the claim may be gone from the API.
type Claim struct {
	UID       string              `json:"uid"`
	Namespace string              `json:"namespace"`
	Name      string              `json:"name"`
	Requests  map[string][]string `json:"requests"` // request -> device IDs, sorted
}

// checkpoint is the file: every claim the driver has prepared and not yet
// unprepared.
type checkpoint struct {
	Driver string           `json:"driver"`
	Claims map[string]Claim `json:"claims"` // by UID
}

// readCheckpoint reads the driver's checkpoint; a missing one is empty.
func readCheckpoint(path string) (map[string]Claim, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Claim{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read DRA checkpoint: %w", err)
	}
	var c checkpoint
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("DRA checkpoint %s is damaged (%w); move it away to start afresh (claims it listed are then not unprepared)", path, err)
	}
	if c.Claims == nil {
		c.Claims = map[string]Claim{}
	}
	return c.Claims, nil
}

// writeCheckpoint replaces the checkpoint atomically.
func writeCheckpoint(path, driver string, claims map[string]Claim) error {
	data, err := json.MarshalIndent(checkpoint{Driver: driver, Claims: claims}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode DRA checkpoint: %w", err)
	}
	if err := atomicfile.Write(path, bytes.NewReader(data), 0o600); err != nil {
		return fmt.Errorf("write DRA checkpoint: %w", err)
	}
	return nil
}

// ClaimKind is the CDI kind of the specs a driver writes for its claims.
func ClaimKind(driver string) string { return driver + "/claim" }

// cdiDeviceName is the CDI device of one request of a claim. A subrequest
// (request/sub) gets '_' for '/', which CDI names do not allow.
func cdiDeviceName(claimUID, request string) string {
	return claimUID + "-" + strings.ReplaceAll(request, "/", "_")
}

// ClaimRequests are the devices allocated to a claim from this driver's
// pool, by request.
func ClaimRequests(c *resourceapi.ResourceClaim, driver, pool string) (map[string][]string, error) {
	if c.Status.Allocation == nil {
		return nil, fmt.Errorf("claim %s/%s is not allocated", c.Namespace, c.Name)
	}
	out := map[string][]string{}
	for _, res := range c.Status.Allocation.Devices.Results {
		if res.Driver != driver {
			continue
		}
		if res.Pool != pool {
			return nil, fmt.Errorf("claim %s/%s has device %s of pool %s; this node's pool is %s", c.Namespace, c.Name, res.Device, res.Pool, pool)
		}
		out[res.Request] = append(out[res.Request], res.Device)
	}
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out, nil
}

// ClaimSpec renders what each request of a claim gets (the resource's env,
// mounts and device nodes for the request's devices) as a CDI spec with
// one device per request, and the external CDI names (cdiDevices) per
// request.
func ClaimSpec(r *manifest.Resource, node string, c Claim) (*specs.Spec, map[string][]string, error) {
	spec := &specs.Spec{
		Kind: ClaimKind(r.Driver()),
		Annotations: map[string]string{
			cdi.AnnotationGenerator: "simple-device-plugin",
			cdi.AnnotationResource:  r.Name,
			cdi.AnnotationClaim:     c.UID,
		},
	}
	external := map[string][]string{}
	for _, req := range slices.Sorted(maps.Keys(c.Requests)) {
		positions, err := r.Positions(c.Requests[req])
		if err != nil {
			return nil, nil, fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
		}
		a, err := r.Render(positions, node)
		if err != nil {
			return nil, nil, fmt.Errorf("claim %s/%s: %w", c.Namespace, c.Name, err)
		}
		var env []string
		for _, k := range slices.Sorted(maps.Keys(a.Envs)) {
			env = append(env, k+"="+a.Envs[k])
		}
		d := specs.Device{Name: cdiDeviceName(c.UID, req), ContainerEdits: cdi.Edits(env, a.Mounts, a.Devices)}
		if len(d.ContainerEdits.Env)+len(d.ContainerEdits.Mounts)+len(d.ContainerEdits.DeviceNodes) == 0 {
			// A CDI device must edit something; a resource with no edits
			// still tells the container which devices it got.
			d.ContainerEdits.Env = []string{"SDP_DRA_DEVICES=" + strings.Join(c.Requests[req], ",")}
		}
		spec.Devices = append(spec.Devices, d)
		external[req] = a.CDIDevices
	}
	version, err := cdiapi.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("CDI spec of claim %s/%s: %w", c.Namespace, c.Name, err)
	}
	spec.Version = version
	return spec, external, nil
}

// checkpointPath is the checkpoint of a driver whose plugin dir is dir.
func checkpointPath(dir string) string { return filepath.Join(dir, CheckpointFile) }
