package dns

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// group puts answers to one client of one size into one GSO message and everything else in
// messages of their own, each message's datagrams in order.
func TestBatchGroup(t *testing.T) {
	type ans struct {
		client int // index into the batch's names
		size   int
	}
	tests := []struct {
		name    string
		gsoOff  bool
		answers []ans
		want    [][]int // per message: the answers it carries
	}{
		{"one answer", false, []ans{{0, 40}}, [][]int{{0}}},
		{"same client, same size", false, []ans{{0, 40}, {0, 40}, {0, 40}}, [][]int{{0, 1, 2}}},
		{"sizes differ", false, []ans{{0, 40}, {0, 41}, {0, 40}}, [][]int{{0, 2}, {1}}},
		{"clients differ", false, []ans{{0, 40}, {1, 40}, {0, 40}, {1, 40}}, [][]int{{0, 2}, {1, 3}}},
		{"GSO refused", true, []ans{{0, 40}, {0, 40}}, [][]int{{0}, {1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gsoOff.Store(tt.gsoOff)
			defer gsoOff.Store(false)
			b := new(batch)
			b.names[1].Port = 1234
			for i, a := range tt.answers {
				b.resp[i] = make([]byte, a.size)
				b.resp[i][0] = byte(i) // tells the answers apart
				b.from[i] = uint8(a.client)
			}
			msgs := b.group(len(tt.answers))
			if msgs != len(tt.want) {
				t.Fatalf("%d messages, want %d", msgs, len(tt.want))
			}
			for m, want := range tt.want {
				h := b.out[m].hdr
				iov := unsafe.Slice(h.Iov, h.Iovlen)
				if len(iov) != len(want) {
					t.Fatalf("message %d: %d datagrams, want %d", m, len(iov), len(want))
				}
				for j, a := range want {
					if got := *iov[j].Base; int(got) != a || int(iov[j].Len) != tt.answers[a].size {
						t.Errorf("message %d datagram %d: answer %d (%d bytes), want %d", m, j, got, iov[j].Len, a)
					}
				}
				if h.Name != (*byte)(unsafe.Pointer(&b.names[tt.answers[want[0]].client])) {
					t.Errorf("message %d goes to the wrong client", m)
				}
				gso := len(want) > 1
				if (h.Controllen != 0) != gso {
					t.Fatalf("message %d: control message %v, want %v", m, h.Controllen != 0, gso)
				}
				if gso {
					cm := (*unix.Cmsghdr)(unsafe.Pointer(h.Control))
					seg := *(*uint16)(unsafe.Pointer(&b.ctrl[m][unix.CmsgLen(0)]))
					if cm.Level != unix.SOL_UDP || cm.Type != unix.UDP_SEGMENT || int(seg) != tt.answers[want[0]].size {
						t.Errorf("message %d: cmsg level %d type %d segment %d", m, cm.Level, cm.Type, seg)
					}
				}
			}
		})
	}
}
