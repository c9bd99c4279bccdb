package manifest

import (
	"strings"
	"testing"
)

// Node-name globs: path.Match syntax, and nothing that can never match a
// node name (a DNS subdomain), which would serve the resource nowhere.
func TestNodeGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob string
		want string // "" = valid; else part of the error
	}{
		{"pool-a-*", ""},
		{"edge-?", ""},
		{"gpu-[0-9]", ""},
		{"[^x]*", ""},
		{"zone-[a-c].example.com", ""},
		{`node\-1`, ""},
		{"*", ""},

		{"[", "is not a valid glob (use *, ? and [a-z])"},
		{"pool-[a", "is not a valid glob"},
		{`x\`, "is not a valid glob"},
		{"[a-]", "is not a valid glob"},
		{"[!x]*", "a class is negated with ^ here, not !"},
		{"Pool-A-*", `node names are lower case; write "pool-a-*"`},
		{"pool_a_*", `can never match a node name (it has '_')`},
		{"pool a", `can never match a node name (it has ' ')`},
		{"rack/1", `can never match a node name (it has '/')`},
		{`pool\_a`, `can never match a node name (it has '_')`},
	} {
		t.Run(tc.glob, func(t *testing.T) {
			got := checkGlob(tc.glob)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("checkGlob(%q) = %q, want %q", tc.glob, got, tc.want)
			}
		})
	}
}

// The manifest reports a bad glob at its YAML path, and a valid one
// serves the nodes it matches: ^ negates a class.
func TestNodeGlobsInAManifest(t *testing.T) {
	_, err := Parse([]byte(manifestOf("name: example.com/a\ncount: 1\nnodes: [\"pool-*\", \"[!x]*\", \"Edge-?\"]")))
	checkErrors(t, err, []wantErr{
		{"resources[0].nodes[1]", "not !"},
		{"resources[0].nodes[2]", "node names are lower case"},
	})
	r := mustResource(t, "name: example.com/a\ncount: 1\nnodes: [\"[^x]*\"]")
	for node, want := range map[string]bool{"a-1": true, "x-1": false, "yz": true} {
		if got := r.ServesNode(node); got != want {
			t.Errorf("[^x]* on %s: %v, want %v", node, got, want)
		}
	}
}
