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
