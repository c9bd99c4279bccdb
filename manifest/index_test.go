package manifest

import (
	"strconv"
	"testing"
)

func TestIDIndex(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 7, 100, 1000, 20_000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = "dev-" + strconv.Itoa(i)
			}
			x := newIDIndex(n)
			for i := range ids {
				if j := x.add(ids, i); j != -1 {
					t.Fatalf("add(%q) found a duplicate at %d", ids[i], j)
				}
			}
			for i, id := range ids {
				if got := x.find(ids, id); got != i {
					t.Fatalf("find(%q) = %d, want %d", id, got, i)
				}
			}
			for _, absent := range []string{"", "dev-", "dev--1", "dev-" + strconv.Itoa(n), "x"} {
				if got := x.find(ids, absent); got != -1 {
					t.Fatalf("find(%q) = %d, want -1", absent, got)
				}
			}
		})
	}
}

func TestIDIndexDuplicates(t *testing.T) {
	ids := []string{"a", "b", "a", "c", "b"}
	x := newIDIndex(len(ids))
	want := []int{-1, -1, 0, -1, 1}
	for i := range ids {
		if got := x.add(ids, i); got != want[i] {
			t.Fatalf("add(%q) = %d, want %d", ids[i], got, want[i])
		}
	}
	if got := x.find(ids, "c"); got != 3 {
		t.Fatalf("find(c) = %d, want 3", got)
	}
}

func TestZeroIDIndex(t *testing.T) {
	var x idIndex // a resource whose device list did not compile
	if got := x.find(nil, "a"); got != -1 {
		t.Fatalf("find on an empty index = %d, want -1", got)
	}
}

func TestPackedStrings(t *testing.T) {
	for _, hint := range []int{0, 3, 1000} {
		s := newPackedStrings(3, hint)
		for _, part := range []string{"fpga-0", "", "fpga-10"} {
			s.b.WriteString(part)
			s.end()
		}
		got := s.strings()
		if len(got) != 3 || got[0] != "fpga-0" || got[1] != "" || got[2] != "fpga-10" {
			t.Fatalf("hint %d: strings() = %q", hint, got)
		}
	}
}

func TestCheckDeviceIDBytes(t *testing.T) {
	for _, id := range []string{"", "fpga-0", "a b", "tab\there", "é", "~", string(make([]byte, 64)), "x23456789012345678901234567890123456789012345678901234567890123"} {
		if got, want := checkDeviceIDBytes([]byte(id)), checkDeviceID(id); got != want {
			t.Errorf("checkDeviceIDBytes(%q) = %q, checkDeviceID says %q", id, got, want)
		}
	}
}
