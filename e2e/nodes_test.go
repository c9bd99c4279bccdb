package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// nodesManifest has a resource for test-* nodes, one for pool-b-* and edge-?
// nodes, and one for every node.
const nodesManifest = `apiVersion: simple-device-plugin/v1alpha1
kind: Manifest
resources:
  - name: e2e.example.com/here
    count: 2
    nodes: ["test-*"]
  - name: e2e.example.com/there
    count: 3
    nodes: ["pool-b-*", "edge-?"]
  - name: e2e.example.com/everywhere
    count: 4
`

// A resource whose nodes: globs do not match --node-name is not served on
// that node: no socket, nothing in the kubelet's capacity, and it does not
// hold up /readyz; the resources that match are served as usual.
func TestNodesSelectWhereAResourceIsServed(t *testing.T) {
	const (
		here       = "e2e.example.com/here"
		there      = "e2e.example.com/there"
		everywhere = "e2e.example.com/everywhere"
	)
	all := []string{here, there, everywhere}
	for _, tc := range []struct {
		node    string
		served  map[string]int64
		skipped []string
	}{
		{nodeName, map[string]int64{here: 2, everywhere: 4}, []string{there}},
		{"edge-1", map[string]int64{there: 3, everywhere: 4}, []string{here}},
		{"pool-b-7", map[string]int64{there: 3, everywhere: 4}, []string{here}},
		{"edge-12", map[string]int64{everywhere: 4}, []string{here, there}},
	} {
		t.Run(tc.node, func(t *testing.T) {
			k := startKubelet(t)
			h := startHost(t, writeManifest(t, nodesManifest), "--node-name", tc.node)
			k.registeredAll(t, tc.served)
			eventually(t, registerTimeout, "/readyz 200", h.statusIs("/readyz", 200))
			holds(t, 300*time.Millisecond, fmt.Sprintf("only %v served on %s", resourceNames(tc.served), tc.node), func() (bool, string) {
				got := k.capacity()
				for _, r := range tc.skipped {
					if c, ok := got[r]; ok {
						return false, fmt.Sprintf("%s is in the kubelet's capacity (%s) on node %s", r, c, tc.node)
					}
					if _, err := os.Lstat(socketPath(r)); err == nil {
						return false, fmt.Sprintf("%s has a socket on node %s", r, tc.node)
					}
				}
				return countsMatch(got, allHealthy(tc.served))
			})
			if n := h.metricValue(t, "sdp_resources"); int(n) != len(tc.served) {
				t.Errorf("sdp_resources %v, want %d", n, len(tc.served))
			}
			for _, r := range tc.skipped {
				if !strings.Contains(h.logs(), r) {
					t.Errorf("the host's logs do not name %s as not served on %s", r, tc.node)
				}
			}
			if left := len(ourSockets(all)); left != len(tc.served) {
				t.Errorf("%d of our sockets in the plugin dir, want %d", left, len(tc.served))
			}
		})
	}
}

// Without a node name the resources with nodes: cannot be placed: the host
// serves the others, warns, and /readyz fails saying why, so a DaemonSet
// that lacks NODE_NAME does not look healthy.
func TestNodesWithoutANodeName(t *testing.T) {
	k := startKubelet(t)
	h := startHost(t, writeManifest(t, nodesManifest), "--node-name", "")
	k.registeredAll(t, map[string]int64{"e2e.example.com/everywhere": 4})
	eventually(t, registerTimeout, "/readyz 503", h.statusIs("/readyz", 503))
	_, body, err := h.get("/readyz")
	if err != nil {
		t.Fatal(err)
	}
	if want := "no node name, so resources with nodes: are not served (e2e.example.com/here, e2e.example.com/there)"; !strings.Contains(body, want) {
		t.Errorf("/readyz says %q, want %q", body, want)
	}
	if !strings.Contains(h.logs(), `"level":"WARN","msg":"resources with nodes: are not served: this process has no node name`) {
		t.Errorf("no warning in the host's logs:\n%s", h.logs())
	}
}
