package cdi

import (
	"fmt"

	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
)

// Registry resolves CDI device names as the container runtime will: from
// the spec files in the node's CDI directories (/etc/cdi, /var/run/cdi).
// The CDI library's cache follows the directories itself (fsnotify), so a
// lookup reads no file.
type Registry struct {
	cache *cdiapi.Cache
	dirs  []string
}

// OpenRegistry starts following dirs; Close stops it.
func OpenRegistry(dirs []string) (*Registry, error) {
	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(dirs...), cdiapi.WithAutoRefresh(true))
	if err != nil {
		return nil, fmt.Errorf("CDI registry %v: %w", dirs, err)
	}
	return &Registry{cache: cache, dirs: dirs}, nil
}

// Resolves reports whether a spec in the registry defines the device.
func (r *Registry) Resolves(name string) bool {
	return r.cache.GetDevice(name) != nil
}

// Dirs are the directories the registry reads.
func (r *Registry) Dirs() []string { return r.dirs }

// Close stops following the directories.
func (r *Registry) Close() error {
	return r.cache.Configure(cdiapi.WithAutoRefresh(false))
}

// OpenResolver is the Resolves of a registry over dirs and the Close that
// goes with it; without dirs, nil (nothing is checked) and a no-op.
func OpenResolver(dirs []string) (resolves func(name string) bool, closeFn func() error, err error) {
	if len(dirs) == 0 {
		return nil, func() error { return nil }, nil
	}
	reg, err := OpenRegistry(dirs)
	if err != nil {
		return nil, nil, err
	}
	return reg.Resolves, reg.Close, nil
}
