package dns

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// The resolver reads queries and writes its own answers in wire format directly (RFC 1035
// section 4): parsing a dns.Msg and packing one back costs more than the rest of an answer,
// and a query the resolver owns needs only the header, the question and an EDNS OPT record.
// Everything here checks bounds before every read: it is fed untrusted bytes (see FuzzHandler).

const (
	headerLen = 12

	flagQR = 1 << 15
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagCD = 1 << 4

	rcodeSuccess  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4
	rcodeRefused  = 5

	typeA    = 1
	typePTR  = 12
	typeAAAA = 28
	typeOPT  = 41
	typeIXFR = 251
	typeAXFR = 252
	typeANY  = 255

	classIN  = 1
	classANY = 255

	// ttl of every record the resolver owns, as Docker's (respTTL).
	ttl = 600
	// ednsSize is the UDP payload size the resolver advertises in its OPT records.
	ednsSize = 1232
	// maxUDPAnswer caps the answers the resolver builds for UDP whatever the client advertises;
	// larger ones are truncated and the client retries over TCP.
	maxUDPAnswer = 4096
)

var (
	errShort  = errors.New("message shorter than a DNS header")
	errFormat = errors.New("malformed DNS message")
)

// query is what the resolver needs of a parsed query message. It lives on the stack.
type query struct {
	id     uint16
	flags  uint16
	qtype  uint16
	qclass uint16
	qEnd   int // offset just past the question
	// key is the question name, lowercase, dotted, without the trailing dot; keyLen its length.
	key    [256]byte
	keyLen int
	// plain is false when a label holds a '.' or the name is the root: no name of ours matches.
	plain bool
	// edns is set when the query carries an OPT record; udpSize and version come from it.
	edns    bool
	udpSize uint16
	version uint8
}

func (q *query) name() []byte { return q.key[:q.keyLen] }

// parseHeader reads the header; errShort when there is not even that, in which case there is
// no ID to answer to and the message is dropped.
func parseHeader(msg []byte, q *query) error {
	if len(msg) < headerLen {
		return errShort
	}
	q.id = binary.BigEndian.Uint16(msg[0:])
	q.flags = binary.BigEndian.Uint16(msg[2:])
	return nil
}

func opcode(flags uint16) int { return int(flags>>11) & 0xF }

// parseQuery reads the question and the EDNS OPT record of a query whose header parseHeader
// read and whose QDCOUNT is 1. Answer and authority records (a query should have none) are
// skipped; any other additional record is ignored. errFormat on any inconsistency.
func parseQuery(msg []byte, q *query) error {
	off, err := readQName(msg, headerLen, q)
	if err != nil {
		return err
	}
	if off+4 > len(msg) {
		return errFormat
	}
	q.qtype = binary.BigEndian.Uint16(msg[off:])
	q.qclass = binary.BigEndian.Uint16(msg[off+2:])
	off += 4
	q.qEnd = off

	an := int(binary.BigEndian.Uint16(msg[6:]))
	ns := int(binary.BigEndian.Uint16(msg[8:]))
	ar := int(binary.BigEndian.Uint16(msg[10:]))
	for i := 0; i < an+ns+ar; i++ {
		nameOff := off
		if off, err = skipName(msg, off); err != nil {
			return err
		}
		if off+10 > len(msg) {
			return errFormat
		}
		rtype := binary.BigEndian.Uint16(msg[off:])
		class := binary.BigEndian.Uint16(msg[off+2:])
		ttlField := binary.BigEndian.Uint32(msg[off+4:])
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		off += 10 + rdlen
		if off > len(msg) {
			return errFormat
		}
		if rtype == typeOPT {
			// RFC 6891 6.1.1: one OPT, in the additional section, owned by the root.
			if i < an+ns || q.edns || msg[nameOff] != 0 {
				return errFormat
			}
			q.edns = true
			q.udpSize = class
			q.version = uint8(ttlField >> 16)
		}
	}
	return nil
}

// readQName reads the question name at off into q.key. Compression pointers are refused: the
// question is the first name of the message, there is nothing earlier to point to.
func readQName(msg []byte, off int, q *query) (int, error) {
	q.keyLen, q.plain = 0, true
	wire := 0
	for {
		if off >= len(msg) {
			return 0, errFormat
		}
		n := int(msg[off])
		off++
		wire++
		if n == 0 {
			break
		}
		if n > 63 || off+n > len(msg) {
			return 0, errFormat
		}
		wire += n
		if wire > 255 {
			return 0, errFormat
		}
		if q.keyLen > 0 {
			q.key[q.keyLen] = '.'
			q.keyLen++
		}
		for _, c := range msg[off : off+n] {
			if c == '.' {
				q.plain = false
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			q.key[q.keyLen] = c
			q.keyLen++
		}
		off += n
	}
	if q.keyLen == 0 {
		q.plain = false
	}
	return off, nil
}

// skipName steps over a possibly compressed name without following pointers.
func skipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, errFormat
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xC0:
			if off+2 > len(msg) {
				return 0, errFormat
			}
			return off + 2, nil
		default: // 0x40 and 0x80 are reserved label types
			return 0, errFormat
		}
	}
}

// reply builds a response to q in place: the header of msg is overwritten and the question
// (left where it is) is followed by what the caller appends. msg[:qEnd] must be the query.
type reply struct {
	b     []byte
	max   int  // size the message must fit, OPT included
	edns  bool // the query had an OPT record: so does the reply
	count int
	trunc bool
	ext   byte // upper bits of the rcode, sent in the OPT record
}

func newReply(msg []byte, q *query, rcode int, tcp bool) reply {
	// reply holds no pointer to q: escape analysis would move q (and its 256-byte name) to
	// the heap along with the slice that append may grow.
	r := reply{b: msg[:q.qEnd], edns: q.edns, max: maxSize(q, tcp)}
	flags := flagQR | flagRA | (q.flags & (flagRD | flagCD)) | uint16(rcode)
	binary.BigEndian.PutUint16(r.b[2:], flags)
	binary.BigEndian.PutUint16(r.b[4:], 1)
	binary.BigEndian.PutUint16(r.b[6:], 0)
	binary.BigEndian.PutUint16(r.b[8:], 0)
	binary.BigEndian.PutUint16(r.b[10:], 0)
	if r.edns {
		r.max -= 11
	}
	return r
}

// maxSize is the largest reply the client accepts: 512 bytes over UDP unless its OPT says
// more (RFC 6891), 64 KiB over TCP.
func maxSize(q *query, tcp bool) int {
	if tcp {
		return 65535
	}
	size := 512
	if q.edns && int(q.udpSize) > size {
		size = min(int(q.udpSize), maxUDPAnswer)
	}
	return size
}

// addAddr appends an A or AAAA record for ip owned by the question name (a pointer to it).
// When the record does not fit, the reply is marked truncated and the record dropped.
func (r *reply) addAddr(ip netip.Addr) {
	if ip.Is4() {
		a := ip.As4()
		r.add(typeA, a[:])
	} else {
		a := ip.As16()
		r.add(typeAAAA, a[:])
	}
}

func (r *reply) add(rtype uint16, rdata []byte) {
	if r.trunc || len(r.b)+12+len(rdata) > r.max {
		r.trunc = true
		return
	}
	r.b = append(r.b, 0xC0, headerLen, byte(rtype>>8), byte(rtype), 0, classIN,
		byte(ttl>>24), byte(ttl>>16), byte(ttl>>8), byte(ttl&0xFF),
		byte(len(rdata)>>8), byte(len(rdata)))
	r.b = append(r.b, rdata...)
	r.count++
}

// finish writes the counts, the OPT record when the query had one, and returns the message.
func (r *reply) finish() []byte {
	binary.BigEndian.PutUint16(r.b[6:], uint16(r.count))
	if r.trunc {
		binary.BigEndian.PutUint16(r.b[2:], binary.BigEndian.Uint16(r.b[2:])|flagTC)
	}
	if r.edns {
		r.b = appendOPT(r.b, r.ext)
		binary.BigEndian.PutUint16(r.b[10:], 1)
	}
	return r.b
}

// appendOPT appends an OPT record advertising ednsSize; extRcode is the upper 8 bits of a
// 12-bit rcode (1 for BADVERS).
func appendOPT(b []byte, extRcode byte) []byte {
	return append(b, 0, 0, typeOPT, byte(ednsSize>>8), byte(ednsSize&0xFF), extRcode, 0, 0, 0, 0, 0)
}

// headerOnly answers in place with just a header: for queries whose question cannot be
// trusted (no question, several, unparsable, unknown opcode), as RFC 1035 servers do.
func headerOnly(msg []byte, q *query, rcode int) []byte {
	b := msg[:headerLen]
	flags := flagQR | flagRA | (q.flags & (flagRD | 0x7800)) | uint16(rcode) // keep the opcode
	binary.BigEndian.PutUint16(b[2:], flags)
	clear(b[4:headerLen])
	return b
}

// shuffle permutes the last n fixed-size records of b in place (Fisher-Yates), so that clients
// that take the first address spread over the holders of a name, as Docker does.
func shuffle(b []byte, n, size int, intn func(int) int) {
	if n < 2 {
		return
	}
	base := len(b) - n*size
	var tmp [40]byte
	for i := n - 1; i > 0; i-- {
		j := intn(i + 1)
		if i == j {
			continue
		}
		ri := b[base+i*size : base+(i+1)*size]
		rj := b[base+j*size : base+(j+1)*size]
		copy(tmp[:size], ri)
		copy(ri, rj)
		copy(rj, tmp[:size])
	}
}

// ptrAddr turns a reverse name ("4.3.2.1.in-addr.arpa", 32 nibbles + "ip6.arpa") into the
// address it names; false for anything else, including partial (network) reverse names.
func ptrAddr(key []byte) (netip.Addr, bool) {
	const v4, v6 = ".in-addr.arpa", ".ip6.arpa"
	switch {
	case len(key) > len(v4) && string(key[len(key)-len(v4):]) == v4:
		var a [4]byte
		s := key[:len(key)-len(v4)]
		for i := 3; i >= 0; i-- {
			n, digits := 0, 0
			for len(s) > 0 && s[0] != '.' {
				// Decimal without leading zeros: "01" is not a label of a reverse name.
				if s[0] < '0' || s[0] > '9' || digits == 3 || (digits == 1 && n == 0) {
					return netip.Addr{}, false
				}
				n = n*10 + int(s[0]-'0')
				digits++
				s = s[1:]
			}
			if digits == 0 || n > 255 {
				return netip.Addr{}, false
			}
			a[i] = byte(n)
			if i > 0 {
				if len(s) == 0 {
					return netip.Addr{}, false
				}
				s = s[1:] // the dot
			}
		}
		if len(s) != 0 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(a), true
	case len(key) == 64+len(v6)-1 && string(key[len(key)-len(v6):]) == v6:
		var a [16]byte
		for i := range 32 {
			c, sep := key[2*i], key[2*i+1]
			if sep != '.' {
				return netip.Addr{}, false
			}
			var nib byte
			switch {
			case '0' <= c && c <= '9':
				nib = c - '0'
			case 'a' <= c && c <= 'f':
				nib = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// The first label is the lowest nibble of the last byte.
			pos := 31 - i
			if pos%2 == 0 {
				a[pos/2] |= nib << 4
			} else {
				a[pos/2] |= nib
			}
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// emptyReply answers q with rcode and no records (errors, NODATA), in place.
func emptyReply(msg []byte, q *query, rcode int, tcp bool) []byte {
	r := newReply(msg, q, rcode, tcp)
	return r.finish()
}
