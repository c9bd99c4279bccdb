package discover

import (
	"fmt"
	"os"
	"testing"
)

// BenchmarkScan10000 scans a directory of 10,000 entries: 10 device nodes
// among regular files the pattern does not match, then 10,000 nodes that
// all match.
func BenchmarkScan10000(b *testing.B) {
	for _, bc := range []struct {
		name  string
		nodes int
	}{
		{"10 of 10000 match", 10},
		{"10000 of 10000 match", 10000},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := newRoot(b)
			for i := range bc.nodes {
				r.char(fmt.Sprintf("/dev/ttyB%05d", i), 240, uint32(i))
			}
			for i := range 10000 - bc.nodes {
				f, err := os.Create(r.at(fmt.Sprintf("/dev/file%05d", i)))
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
			spec := Spec{Paths: []string{"/dev/ttyB*"}}
			b.ReportAllocs()
			for b.Loop() {
				res, err := Scan(r.dir, spec, 0)
				if err != nil || len(res.Devices) != bc.nodes {
					b.Fatalf("Scan: %d devices, %v", len(res.Devices), err)
				}
			}
		})
	}
}
