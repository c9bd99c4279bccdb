package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// nodesManifest serves example.com/gpu only on pool-a-* nodes,
// example.com/edge only on edge-? nodes, example.com/seat everywhere.
const nodesManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: example.com/gpu
    count: 2
    nodes: ["pool-a-*"]
  - name: example.com/edge
    count: 1
    nodes: ["edge-?", "edge-[x-z]*"]
  - name: example.com/seat
    count: 3
`

// simulate --node-name shows which resources a node serves: those whose
// nodes: globs match, and every resource without nodes:; the others are
// listed as skipped, and asking for one of them is an error naming its
// globs. NODE_NAME stands in for the flag, as in the DaemonSet.
func TestSimulateNodeNameSelectsResources(t *testing.T) {
	path := writeFile(t, t.TempDir(), "manifest.yaml", nodesManifest)
	for _, tc := range []struct {
		name         string
		args         []string
		env          string // NODE_NAME
		served       []string
		skipped      []string
		wantCode     int
		wantInStderr []string
	}{
		{name: "pool-a node", args: []string{"--node-name", "pool-a-3"},
			served: []string{"example.com/gpu", "example.com/seat"}, skipped: []string{"example.com/edge"}},
		{name: "edge node by ?", args: []string{"--node-name", "edge-1"},
			served: []string{"example.com/edge", "example.com/seat"}, skipped: []string{"example.com/gpu"}},
		{name: "edge node by class", args: []string{"--node-name", "edge-zone-2"},
			served: []string{"example.com/edge", "example.com/seat"}, skipped: []string{"example.com/gpu"}},
		{name: "? is one character", args: []string{"--node-name", "edge-12"},
			served: []string{"example.com/seat"}, skipped: []string{"example.com/edge", "example.com/gpu"}},
		{name: "NODE_NAME", env: "pool-a-9",
			served: []string{"example.com/gpu", "example.com/seat"}, skipped: []string{"example.com/edge"}},
		{name: "no node name serves only unrestricted resources",
			served: []string{"example.com/seat"}, skipped: []string{"example.com/edge", "example.com/gpu"}},
		{name: "asking for a resource the node does not serve",
			args:     []string{"--node-name", "pool-b-1", "--request", "example.com/gpu=1"},
			wantCode: exitFailure, wantInStderr: []string{`example.com/gpu is not served on node "pool-b-1"`, "pool-a-*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("NODE_NAME", tc.env)
			unsetEnv(t, "SDP_NODE_NAME")
			code, stdout, stderr := runMain(t, append([]string{"simulate", "--manifest", path, "--output", "json"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr)
			}
			if tc.wantCode != exitOK {
				for _, want := range tc.wantInStderr {
					if !strings.Contains(stderr, want) {
						t.Errorf("stderr %q does not say %q", stderr, want)
					}
				}
				return
			}
			var report struct {
				Node      string                  `json:"node"`
				Resources []struct{ Name string } `json:"resources"`
				Skipped   []json.RawMessage       `json:"skippedOnThisNode"`
			}
			if err := json.Unmarshal([]byte(stdout), &report); err != nil {
				t.Fatalf("simulate --output json: %v\n%s", err, stdout)
			}
			var served []string
			for _, r := range report.Resources {
				served = append(served, r.Name)
			}
			skipped := skippedNames(t, report.Skipped)
			slices.Sort(served)
			slices.Sort(skipped)
			if !slices.Equal(served, tc.served) || !slices.Equal(skipped, tc.skipped) {
				t.Errorf("node %q: served %v, skipped %v; want served %v, skipped %v", report.Node, served, skipped, tc.served, tc.skipped)
			}
		})
	}
}

// skippedNames reads skippedOnThisNode entries as resource names: each is a
// name, or an object with the name (and its globs).
func skippedNames(t *testing.T, entries []json.RawMessage) []string {
	t.Helper()
	var names []string
	for _, e := range entries {
		var name string
		if err := json.Unmarshal(e, &name); err == nil {
			names = append(names, name)
			continue
		}
		var obj struct{ Name string }
		if err := json.Unmarshal(e, &obj); err != nil || obj.Name == "" {
			t.Fatalf("skippedOnThisNode entry %s: neither a name nor an object with one", e)
		}
		names = append(names, obj.Name)
	}
	return names
}
