package host

import (
	"slices"
	"testing"
)

func TestParseNodeList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		bad  bool
	}{
		{in: "0", want: []int{0}},
		{in: "0-1", want: []int{0, 1}},
		{in: "0,2-3,7", want: []int{0, 2, 3, 7}},
		{in: "", bad: true},
		{in: "1-0", bad: true},
		{in: "a", bad: true},
	} {
		got, err := parseNodeList(tc.in)
		if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
			t.Errorf("parseNodeList(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
