// Package cdi holds the Container Device Interface side of the host: the
// CDI specs it generates from compiled resources (types and validation
// from tags.cncf.io/container-device-interface), the life of their files,
// and the resolution of CDI names against the node's CDI registry.
package cdi

import (
	"fmt"
	"strings"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	specs "tags.cncf.io/container-device-interface/specs-go"

	"simple-device-plugin/manifest"
)

// Annotations that mark a spec as ours: only such specs are ever
// rewritten or removed.
const (
	AnnotationGenerator = "simple-device-plugin/generated-by"
	AnnotationResource  = "simple-device-plugin/resource"
	AnnotationClaim     = "simple-device-plugin/claim" // the UID of the DRA claim a spec was written for
	generator           = "simple-device-plugin"
)

// FilePrefix starts the name of every spec file the host writes.
const FilePrefix = "simple-device-plugin-"

// FileName is the name of the resource's spec file:
// simple-device-plugin-example.com_fpga.yaml for example.com/fpga.
func FileName(resource string) string {
	return FilePrefix + strings.ReplaceAll(resource, "/", "_") + ".yaml"
}

// Spec builds the CDI spec of a resource that has cdi.spec: one CDI device
// per device ID, holding its per-device mounts and device nodes.
func Spec(r *manifest.Resource, node string) (*specs.Spec, error) {
	if r.CDIKind() == "" {
		return nil, fmt.Errorf("%s generates no CDI spec", r.Name)
	}
	spec := &specs.Spec{
		Kind:        r.CDIKind(),
		Annotations: map[string]string{AnnotationGenerator: generator, AnnotationResource: r.Name},
		Devices:     make([]specs.Device, len(r.IDs)),
	}
	for i, id := range r.IDs {
		mounts, nodes, err := r.DeviceEdits(i, node)
		if err != nil {
			return nil, err
		}
		spec.Devices[i] = specs.Device{Name: id, ContainerEdits: Edits(nil, mounts, nodes)}
	}
	version, err := cdiapi.MinimumRequiredVersion(spec)
	if err != nil {
		return nil, fmt.Errorf("CDI spec of %s: %w", r.Name, err)
	}
	spec.Version = version
	return spec, nil
}

// Edits are rendered env vars (NAME=value), bind mounts and device nodes
// as a CDI device's container edits.
func Edits(env []string, mounts []manifest.Mount, nodes []manifest.DeviceNode) specs.ContainerEdits {
	e := specs.ContainerEdits{Env: env}
	for _, m := range mounts {
		opts := []string{"rbind", "rprivate"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		e.Mounts = append(e.Mounts, &specs.Mount{HostPath: m.HostPath, ContainerPath: m.ContainerPath, Type: "bind", Options: opts})
	}
	for _, n := range nodes {
		e.DeviceNodes = append(e.DeviceNodes, &specs.DeviceNode{Path: n.ContainerPath, HostPath: n.HostPath, Permissions: n.Permissions})
	}
	return e
}

// ours reports whether a spec was written by this project.
func ours(s *specs.Spec) bool {
	return s != nil && s.Annotations[AnnotationGenerator] == generator
}
