package manifest

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkPreferred: GetPreferredAllocation's work for a 1,000-device
// resource on two NUMA nodes, every device available (in the kubelet's
// unordered way), a request of 8.
func BenchmarkPreferred(b *testing.B) {
	for _, policy := range []string{PolicyPacked, PolicySpread, PolicyFirst} {
		b.Run(policy, func(b *testing.B) {
			r := mustResource(b, "name: example.com/big\ncount: 1000\ntopology: {numaNodes: 2}\nallocationPolicy: "+policy)
			available := make([]string, len(r.IDs))
			copy(available, r.IDs)
			rand.New(rand.NewPCG(1, 2)).Shuffle(len(available), func(i, j int) { available[i], available[j] = available[j], available[i] })
			b.ReportAllocs()
			for b.Loop() {
				if got, err := r.Preferred(available, nil, 8); err != nil || len(got) != 8 {
					b.Fatal(fmt.Sprint(got, err))
				}
			}
		})
	}
}

// BenchmarkPreferredMustInclude: every available device is also a
// must-include one; time per device stays flat as their number grows
// tenfold (deduplication by set, not by search).
func BenchmarkPreferredMustInclude(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			r := mustResource(b, fmt.Sprintf("name: example.com/big\ncount: %d\nidTemplate: '{{ .Index }}'", n))
			for b.Loop() {
				if got, err := r.Preferred(r.IDs, r.IDs, n); err != nil || len(got) != n {
					b.Fatal(len(got), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/device")
		})
	}
}
