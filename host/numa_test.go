package host_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"simple-device-plugin/host"
)

// A topology with more NUMA nodes than the machine has is served, with a
// warning naming the nodes the kubelet's topology manager will leave out;
// a topology the machine can hold, or no topology, says nothing. An
// unreadable node list disables the check.
func TestWarnsAboutNUMANodesTheMachineLacks(t *testing.T) {
	const manifestYAML = `
apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - {name: example.com/wide, count: 8, topology: {numaNodes: 4}}
  - {name: example.com/fits, count: 4, topology: {numaNodes: 2}}
  - {name: example.com/flat, count: 2}
`
	for _, tc := range []struct {
		name, online string   // "" = no file
		want         []string // one warning each
	}{
		{"one node", "0\n", []string{
			`resource=example.com/wide numa_nodes_missing="[1 2 3]" machine_numa_nodes=[0]`,
			`resource=example.com/fits numa_nodes_missing=[1] machine_numa_nodes=[0]`,
		}},
		{"two nodes", "0-1\n", []string{`resource=example.com/wide numa_nodes_missing="[2 3]" machine_numa_nodes="[0 1]"`}},
		{"four nodes", "0-3\n", nil},
		{"unknown", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t)
			online := filepath.Join(dir, "online")
			if tc.online != "" {
				if err := os.WriteFile(online, []byte(tc.online), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var logs logBuffer
			h := host.New(host.Config{
				DevicePluginDir: dir,
				NUMANodesFile:   online,
				Logger:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.Run(ctx, mustParse(t, manifestYAML)) }()
			waitFor(t, "host running", h.Running)
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			var warnings []string
			for line := range strings.Lines(logs.String()) {
				if strings.Contains(line, "NUMA") {
					warnings = append(warnings, line)
				}
			}
			if len(warnings) != len(tc.want) {
				t.Fatalf("NUMA warnings %q, want %d", warnings, len(tc.want))
			}
			for _, want := range tc.want {
				if !slices.ContainsFunc(warnings, func(w string) bool { return strings.Contains(w, want) }) {
					t.Errorf("NUMA warnings %q, want one with %q", warnings, want)
				}
			}
		})
	}
}
