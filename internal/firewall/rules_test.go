package firewall

import (
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestLayouts checks what differs between the two tables without a kernel: the ip6 table has
// no guard chain and no 127.0.0.0/8 masquerade, its sets hold IPv6 addresses, and its DNAT
// rules read 16-byte addresses at the IPv6 header's offsets with the protocol and port in the
// words after them (NFT_REG32_04 and 05), where the NAT expression also takes the port.
func TestLayouts(t *testing.T) {
	ip, ip6 := newLayout(families[tableIP]), newLayout(families[tableIP6])
	if ip.table.Family != nftables.TableFamilyIPv4 || ip6.table.Family != nftables.TableFamilyIPv6 ||
		ip.table.Name != TableName || ip6.table.Name != TableName {
		t.Fatalf("tables %+v and %+v", ip.table, ip6.table)
	}
	for _, tc := range []struct {
		l      *layout
		chains int
		post   int
		addr   nftables.SetDatatype
	}{{ip, 5, 3, nftables.TypeIPAddr}, {ip6, 4, 2, nftables.TypeIP6Addr}} {
		if len(tc.l.chains) != tc.chains || len(tc.l.rules["postrouting"]) != tc.post || len(tc.l.rules["forward"]) != 8 {
			t.Errorf("%s: %d chains, %d postrouting and %d forward rules", tc.l, len(tc.l.chains), len(tc.l.rules["postrouting"]), len(tc.l.rules["forward"]))
		}
		for _, name := range []string{setSubnets, setMasquerade} {
			if k := tc.l.byName[name].KeyType; k.Name != tc.addr.Name {
				t.Errorf("%s: set %s has keys %s", tc.l, name, k.Name)
			}
		}
		if k, v := tc.l.byName[mapPortsIP].KeyType, tc.l.byName[mapPortsIP].DataType; k.Bytes != tc.addr.Bytes+8 || v.Bytes != tc.addr.Bytes+4 {
			t.Errorf("%s: ports_ip is %d bytes : %d bytes", tc.l, k.Bytes, v.Bytes)
		}
		for _, c := range tc.l.chains {
			if len(tc.l.rules[c.Name]) == 0 {
				t.Errorf("%s: chain %s has no rules", tc.l, c.Name)
			}
		}
	}
	if ip6.chain("guard") != nil {
		t.Errorf("the ip6 table has a guard chain")
	}

	dnat := ip6.rules["prerouting"][0].exprs // publish on one address
	addrLoad, proto, port := dnat[2].(*expr.Payload), dnat[3].(*expr.Meta), dnat[4].(*expr.Payload)
	nat := dnat[len(dnat)-1].(*expr.NAT)
	if addrLoad.Offset != 24 || addrLoad.Len != 16 || addrLoad.DestRegister != unix.NFT_REG_1 {
		t.Errorf("ip6 daddr loaded as %+v", addrLoad)
	}
	if proto.Register != unix.NFT_REG32_04 || port.DestRegister != unix.NFT_REG32_05 {
		t.Errorf("ip6 key continues in registers %d and %d", proto.Register, port.DestRegister)
	}
	if nat.Family != unix.NFPROTO_IPV6 || nat.RegAddrMin != unix.NFT_REG_1 || nat.RegProtoMin != unix.NFT_REG32_04 {
		t.Errorf("ip6 NAT %+v", nat)
	}
	if nat := ip6.rules["prerouting"][1].exprs; nat[len(nat)-1].(*expr.NAT).RegProtoMin != unix.NFT_REG32_04 {
		t.Errorf("ip6 NAT of ports_any takes the port from %d", nat[len(nat)-1].(*expr.NAT).RegProtoMin)
	}
	saddr := ip6.rules["postrouting"][0].exprs // hairpin: ct status dnat, oifname, saddr
	if p := saddr[5].(*expr.Payload); p.Offset != 8 || p.Len != 16 {
		t.Errorf("ip6 saddr loaded as %+v", p)
	}
	v4 := ip.rules["prerouting"][0].exprs
	if v4[3].(*expr.Meta).Register != unix.NFT_REG32_01 || v4[len(v4)-1].(*expr.NAT).RegProtoMin != unix.NFT_REG32_01 {
		t.Errorf("the ip table's DNAT registers changed")
	}
}
