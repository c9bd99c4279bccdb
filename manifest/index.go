package manifest

import (
	"hash/maphash"
	"math/bits"
	"strings"
)

// A host serving 500 resources of 1,000 devices holds 500,000 device IDs
// for its whole life, so how they are kept is much of its memory. Each ID
// its own string, indexed by a map[string]int, cost about 90 B a device
// (500 × 1,000: 44 MB of a 67 MB live heap). Kept as slices of one string
// per resource (packedStrings) and indexed by an open-addressing table of
// int32 (idIndex), they cost about 35 B.

// packedStrings builds many strings (a resource's device IDs, its health
// check paths) in one, each a slice of it: one allocation per resource
// instead of one per device.
type packedStrings struct {
	b    strings.Builder
	ends []int // end of each string in b
}

func newPackedStrings(n, bytesHint int) *packedStrings {
	s := &packedStrings{ends: make([]int, 0, n)}
	s.b.Grow(bytesHint)
	return s
}

// end marks the end of the string written since the previous one.
func (s *packedStrings) end() { s.ends = append(s.ends, s.b.Len()) }

// strings returns the strings written so far, slices of one string.
func (s *packedStrings) strings() []string {
	all := s.b.String()
	if s.b.Cap() > s.b.Len()+s.b.Len()/8 {
		// The builder grew past the hint: keep only what is used.
		all = strings.Clone(all)
	}
	out := make([]string, len(s.ends))
	start := 0
	for i, end := range s.ends {
		out[i] = all[start:end]
		start = end
	}
	return out
}

// idIndex finds a device's index in Resource.IDs by its ID: an
// open-addressing hash table with linear probing whose slots hold index+1
// (0 is an empty slot), at most two-thirds full. The IDs themselves stay
// in Resource.IDs; a slot only points there.
type idIndex struct {
	slots []int32
	mask  uint64
}

// idSeed is random per process, so IDs crafted to collide (a manifest is
// user input to `validate`) cannot be prepared in advance.
var idSeed = maphash.MakeSeed()

// newIDIndex returns an empty index for up to n IDs. n must fit in an
// int32; compileResource bounds it far below (maxCount).
func newIDIndex(n int) idIndex {
	size := 1 << bits.Len(uint(n+n/2)) // a power of two above 1.5 n
	return idIndex{slots: make([]int32, size), mask: uint64(size - 1)}
}

// add indexes ids[i]. If an equal ID is indexed already, it adds nothing
// and returns that ID's index; otherwise -1.
func (x *idIndex) add(ids []string, i int) int {
	id := ids[i]
	for slot := maphash.String(idSeed, id) & x.mask; ; slot = (slot + 1) & x.mask {
		switch at := x.slots[slot]; {
		case at == 0:
			x.slots[slot] = int32(i + 1)
			return -1
		case ids[at-1] == id:
			return int(at - 1)
		}
	}
}

// find returns id's index in ids, or -1.
func (x *idIndex) find(ids []string, id string) int {
	if len(x.slots) == 0 {
		return -1
	}
	for slot := maphash.String(idSeed, id) & x.mask; ; slot = (slot + 1) & x.mask {
		switch at := x.slots[slot]; {
		case at == 0:
			return -1
		case ids[at-1] == id:
			return int(at - 1)
		}
	}
}
