package manifest

import (
	"reflect"
	"testing"
	"unsafe"
)

// Reparse must answer exactly as Parse does, whatever it reuses: same
// errors (paths included), same resources, same hash, same renderings.
func TestReparseIsParse(t *testing.T) {
	fpga := "name: example.com/fpga\ncount: 4\nenv: {FPGA: '{{ join .IDs \",\" }}'}\nmounts: [{hostPath: '/var/{{ .ID }}', containerPath: '/dev/f/{{ .ID }}', perDevice: true}]"
	fpgaMore := "name: example.com/fpga\ncount: 5\nenv: {FPGA: '{{ join .IDs \",\" }}'}\nmounts: [{hostPath: '/var/{{ .ID }}', containerPath: '/dev/f/{{ .ID }}', perDevice: true}]"
	seat := "name: example.com/seat\nids: [s-a, s-b, s-c]\nenv: {SEATS: '{{ join .IDs \" \" }}'}"
	seatClash := "name: example.com/seat\nids: [s-a, s-b, s-c]\nenv: {FPGA: x}"
	gpu := "name: example.com/gpu\ncount: 2\nmounts: [{hostPath: '/var/{{ .ID }}', containerPath: '/dev/f/{{ .ID }}', perDevice: true}]"
	gpuSameIDs := "name: example.com/gpu\nids: [fpga-0]\nmounts: [{hostPath: '/var/{{ .ID }}', containerPath: '/dev/f/{{ .ID }}', perDevice: true}]"
	broken := "name: example.com/seat\ncount: 0"
	tests := []struct {
		name      string
		old, new  string
		invalid   bool
		reuseSeat bool // valid ones: the new seat resource is prev's, reused
	}{
		{"nothing changed", manifestOf(fpga, seat), manifestOf(fpga, seat), false, true},
		{"one resource changed", manifestOf(fpga, seat), manifestOf(fpgaMore, seat), false, true},
		{"resources reordered", manifestOf(fpga, seat), manifestOf(seat, fpga), false, true},
		{"a resource added", manifestOf(seat), manifestOf(fpga, seat), false, true},
		{"a resource removed", manifestOf(fpga, seat), manifestOf(seat), false, true},
		{"a new resource", manifestOf(fpga, seat), manifestOf(fpga, seat, gpu), false, true},
		{"a changed resource clashes with an unchanged one", manifestOf(seat, fpga), manifestOf(seatClash, fpga), true, false},
		{"a new resource clashes with an unchanged one", manifestOf(seat, fpga), manifestOf(seat, fpga, gpuSameIDs), true, true},
		{"a new resource clashes, unchanged one moved", manifestOf(fpga, seat), manifestOf(gpuSameIDs, seat, fpga), true, true},
		{"an unchanged resource with a new duplicate name", manifestOf(seat), manifestOf(seat, seat), true, true},
		{"an invalid resource among unchanged ones", manifestOf(fpga, seat), manifestOf(fpga, seat, broken), true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev := mustParse(t, tc.old)
			want, wantErr := Parse([]byte(tc.new))
			got, gotErr := Reparse([]byte(tc.new), prev)
			if !reflect.DeepEqual(Errors(gotErr), Errors(wantErr)) || (gotErr == nil) != (wantErr == nil) {
				t.Fatalf("Reparse errors:\n%v\nParse errors:\n%v", gotErr, wantErr)
			}
			if (wantErr != nil) != tc.invalid {
				t.Fatalf("Parse: %v; the case expects invalid=%v", wantErr, tc.invalid)
			}
			if wantErr != nil {
				return
			}
			if got.Hash != want.Hash || !reflect.DeepEqual(got.Spec, want.Spec) || len(got.Resources) != len(want.Resources) {
				t.Fatalf("Reparse gave hash %s and %d resources, Parse %s and %d", got.Hash, len(got.Resources), want.Hash, len(want.Resources))
			}
			for i, w := range want.Resources {
				g := got.Resources[i]
				if g.Name != w.Name || g.specIndex != w.specIndex || !reflect.DeepEqual(g.Spec, w.Spec) || !reflect.DeepEqual(g.IDs, w.IDs) {
					t.Fatalf("resource %d: Reparse %s (index %d, IDs %v), Parse %s (index %d, IDs %v)", i, g.Name, g.specIndex, g.IDs, w.Name, w.specIndex, w.IDs)
				}
				ids := w.IDs[:min(2, len(w.IDs))]
				ga, err1 := renderIDs(g, ids, "node-a")
				wa, err2 := renderIDs(w, ids, "node-a")
				if err1 != nil || err2 != nil || !reflect.DeepEqual(ga, wa) {
					t.Fatalf("resource %s renders %+v (%v) after Reparse, %+v (%v) after Parse", w.Name, ga, err1, wa, err2)
				}
			}
			old, cur := prev.Resource("example.com/seat"), got.Resource("example.com/seat")
			if old == nil || cur == nil {
				return
			}
			if reused := unsafe.StringData(old.IDs[0]) == unsafe.StringData(cur.IDs[0]); reused != tc.reuseSeat {
				t.Fatalf("seat reused: %v, want %v", reused, tc.reuseSeat)
			}
			if cur == old {
				t.Fatal("Reparse returned prev's resource itself; it must be a copy (the host serves prev's)")
			}
		})
	}
}

// A reused resource is a copy: its place in the new manifest does not
// change the one being served.
func TestReparseLeavesPrevAlone(t *testing.T) {
	seat := "name: example.com/seat\nids: [s-a]"
	prev := mustParse(t, manifestOf(seat))
	if _, err := Reparse([]byte(manifestOf("name: example.com/x\ncount: 1", seat)), prev); err != nil {
		t.Fatal(err)
	}
	if got := prev.Resources[0].specIndex; got != 0 {
		t.Fatalf("prev's resource now has index %d, want 0", got)
	}
}
