package manifest

import (
	"fmt"
	"testing"
)

func idsN(n int, format string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(format, i)
	}
	return ids
}

// A request may carry 100,000 IDs: the error names a handful and says how
// many there are, so the message stays small in the gRPC trailer and in
// kubelet logs.
func TestErrorsNameBoundedIDs(t *testing.T) {
	r := mustResource(t, "name: example.com/t\ncount: 20")
	tests := []struct {
		name string
		err  func() error
		want string
	}{
		{"render: unknown", func() error { _, err := renderIDs(r, idsN(100000, "u%d"), "n"); return err },
			`example.com/t has no device "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", … (100000 in all)`},
		{"render: exactly eight unknown", func() error { _, err := renderIDs(r, idsN(8, "u%d"), "n"); return err },
			`example.com/t has no device "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"`},
		{"preferred: unknown available", func() error { _, err := r.Preferred(idsN(100000, "u%d"), nil, 1); return err },
			`allocation size 1 is more than the 0 available devices (left out, not devices of example.com/t: [u0 u1 u2 u3 u4 u5 u6 u7 … (100000 in all)])`},
		{"preferred: unknown must-include", func() error { _, err := r.Preferred(r.IDs, idsN(100000, "u%d"), 1); return err },
			`example.com/t has no device "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", … (100000 in all)`},
		{"preferred: must-include not available", func() error { _, err := r.Preferred(r.IDs[:1], r.IDs[1:], 19); return err },
			"must-include devices [t-1 t-2 t-3 t-4 t-5 t-6 t-7 t-8 … (19 in all)] are not among the available devices"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// 100,000 must-include devices are all taken (BenchmarkPreferredMustInclude
// shows the cost growing linearly with their number).
func TestPreferredManyMustInclude(t *testing.T) {
	r := mustResource(t, "name: example.com/big\ncount: 100000\nidTemplate: '{{ .Index }}'")
	got, err := r.Preferred(r.IDs, r.IDs, len(r.IDs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(r.IDs) {
		t.Fatalf("got %d devices, want %d", len(got), len(r.IDs))
	}
	// Duplicates count once against the size.
	if got, err := r.Preferred(r.IDs[:3], []string{"2", "2", "2"}, 1); err != nil || len(got) != 1 || got[0] != "2" {
		t.Errorf("repeated must-include: %v, %v; want [2]", got, err)
	}
}
