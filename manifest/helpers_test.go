package manifest

import (
	"slices"
	"strings"
	"testing"
)

// header is the start of every valid manifest.
const header = "apiVersion: simple-device-plugin/v1alpha1\nkind: Manifest\nresources:\n"

// manifestOf builds a manifest from resource items, each written as the
// YAML of one list entry without its "- " (multi-line items are indented
// for the reader here).
func manifestOf(items ...string) string {
	var b strings.Builder
	b.WriteString(header)
	for _, item := range items {
		for i, line := range strings.Split(strings.TrimSpace(item), "\n") {
			if i == 0 {
				b.WriteString("  - ")
			} else {
				b.WriteString("    ")
			}
			b.WriteString(line)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// wantErr is one expected problem: its exact YAML path and a key part of
// its message.
type wantErr struct {
	path, msg string
}

// checkErrors asserts err is an ErrorList with exactly the wanted problems,
// in order (ErrorList is sorted by path).
func checkErrors(t *testing.T, err error, want []wantErr) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("want valid, got:\n%v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("want %d errors (first %s: %s), got none", len(want), want[0].path, want[0].msg)
	}
	got := Errors(err)
	if got == nil {
		t.Fatalf("want an ErrorList, got %T: %v", err, err)
	}
	if len(got) != len(want) {
		t.Fatalf("want %d errors, got %d:\n%v", len(want), len(got), err)
	}
	// The list comes in the order of the text; the tables list by path.
	got = slices.Clone(got).sorted()
	for i, w := range want {
		if got[i].Path != w.path {
			t.Errorf("error %d: path %q, want %q (message %q)", i, got[i].Path, w.path, got[i].Message)
		}
		// Error() has the line: "path (line 5, column 3): message", or
		// "line 6: message" for the YAML itself.
		if !strings.Contains(got[i].Error(), w.msg) {
			t.Errorf("error %d at %s: %q does not contain %q", i, got[i].Path, got[i].Error(), w.msg)
		}
	}
}

// mustParse parses a manifest that the test expects to be valid.
func mustParse(t testing.TB, yaml string) *Manifest {
	t.Helper()
	m, err := Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("Parse:\n%v\nmanifest:\n%s", err, yaml)
	}
	return m
}

// mustResource parses a one-resource manifest and returns the resource.
func mustResource(t testing.TB, item string) *Resource {
	t.Helper()
	m := mustParse(t, manifestOf(item))
	return m.Resources[0]
}

// renderIDs renders a container's allocation for ids as Allocate does:
// their positions first, then Render.
func renderIDs(r *Resource, ids []string, node string) (*Allocation, error) {
	devices, err := r.Positions(ids)
	if err != nil {
		return nil, err
	}
	return r.Render(devices, node)
}
