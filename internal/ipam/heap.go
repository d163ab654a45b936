package ipam

// freeHeap is a min-heap of released addresses below the pool's cursor, indexed by address so
// that a static allocation can take one out of the middle in O(log n).
//
// It is hand-rolled rather than built on container/heap because that API moves elements
// through `any`, which costs an allocation per push and pop for most uint64 values; Allocate
// and Release are on the container start path and should not allocate in steady state.
type freeHeap struct {
	a   []uint64
	pos map[uint64]int // address -> index in a
}

func (h *freeHeap) Len() int { return len(h.a) }

func (h *freeHeap) push(x uint64) {
	if h.pos == nil {
		h.pos = make(map[uint64]int)
	}
	h.a = append(h.a, x)
	h.pos[x] = len(h.a) - 1
	h.up(len(h.a) - 1)
}

// popMin removes and returns the lowest address; the heap must not be empty.
func (h *freeHeap) popMin() uint64 {
	x := h.a[0]
	h.removeAt(0)
	return x
}

// remove takes x out of the heap if it is there.
func (h *freeHeap) remove(x uint64) {
	if i, ok := h.pos[x]; ok {
		h.removeAt(i)
	}
}

func (h *freeHeap) removeAt(i int) {
	last := len(h.a) - 1
	delete(h.pos, h.a[i])
	if i != last {
		h.a[i] = h.a[last]
		h.pos[h.a[i]] = i
	}
	h.a = h.a[:last]
	if i < last {
		// The moved element may belong above or below its new slot.
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h *freeHeap) swap(i, j int) {
	h.a[i], h.a[j] = h.a[j], h.a[i]
	h.pos[h.a[i]] = i
	h.pos[h.a[j]] = j
}

func (h *freeHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if h.a[parent] <= h.a[i] {
			return
		}
		h.swap(i, parent)
		i = parent
	}
}

// down sifts i towards the leaves and reports whether it moved.
func (h *freeHeap) down(i int) bool {
	start := i
	n := len(h.a)
	for {
		smallest := i
		if l := 2*i + 1; l < n && h.a[l] < h.a[smallest] {
			smallest = l
		}
		if r := 2*i + 2; r < n && h.a[r] < h.a[smallest] {
			smallest = r
		}
		if smallest == i {
			return i != start
		}
		h.swap(i, smallest)
		i = smallest
	}
}
