package sandbox

import (
	"net/netip"
	"os"
	"syscall"
	"testing"
)

func TestHostsContent(t *testing.T) {
	got := string(HostsContent([]HostEntry{
		{IP: netip.MustParseAddr("172.17.0.2"), Names: []string{"873f7231c461"}},
		{IP: netip.MustParseAddr("172.18.0.2"), Names: []string{"873f7231c461"}},
	}))
	want := hostsHeader + "172.17.0.2\t873f7231c461\n172.18.0.2\t873f7231c461\n"
	if got != want {
		t.Fatalf("hosts:\n%s\nwant:\n%s", got, want)
	}
}

func TestResolvConf(t *testing.T) {
	tests := []struct {
		name, host, want string
		o                ResolvOptions
	}{
		{"--dns replaces servers, keeps the rest", "nameserver 10.0.2.3\nsearch example.com\n",
			"search example.com\nnameserver 192.0.2.53\n", ResolvOptions{Nameservers: []string{"192.0.2.53"}}},
		{"--dns-search and --dns-option replace their lines", "nameserver 10.0.2.3\nsearch a.b\noptions ndots:2\n",
			"nameserver 10.0.2.3\nsearch x.y z.w\noptions ndots:0 edns0\n", ResolvOptions{Search: []string{"x.y", "z.w"}, Options: []string{"ndots:0", "edns0"}}},
		{"keeps servers, search and options", "# generated\nnameserver 10.0.2.3\nsearch example.com\noptions ndots:2\n",
			"nameserver 10.0.2.3\nsearch example.com\noptions ndots:2\n", ResolvOptions{}},
		{"drops loopback servers, falls back", "nameserver 127.0.0.53\noptions edns0\n",
			"options edns0\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n", ResolvOptions{}},
		{"empty host file", "", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n", ResolvOptions{}},
		{"ignores junk", "sortlist 1.2.3.4\nnameserver\nnameserver ::1\nnameserver 192.0.2.1\n", "nameserver 192.0.2.1\n", ResolvOptions{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(ResolvConf([]byte(tt.host), tt.o))
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUpdateFileKeepsInode(t *testing.T) {
	p := t.TempDir() + "/hosts"
	if err := WriteFile(p, []byte("a\n")); err != nil {
		t.Fatal(err)
	}
	before := inode(t, p)
	if err := UpdateFile(p, []byte("b\n")); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); string(got) != "b\n" {
		t.Fatalf("content %q, want %q", got, "b\n")
	}
	if after := inode(t, p); after != before {
		t.Fatalf("inode changed from %d to %d: a bind mount of the old file would go stale", before, after)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestEmbeddedResolvConf(t *testing.T) {
	tests := []struct {
		name, host, want string
		o                ResolvOptions
	}{
		{"host servers become upstreams", "nameserver 10.0.2.3\n", "nameserver 127.0.0.11\noptions ndots:0\n", ResolvOptions{}},
		{"keeps search and options", "nameserver 10.0.2.3\nsearch lan\noptions edns0\n", "nameserver 127.0.0.11\nsearch lan\noptions ndots:0 edns0\n", ResolvOptions{}},
		{"the container's ndots wins", "search lan\n", "nameserver 127.0.0.11\nsearch x.test\noptions ndots:2\n",
			ResolvOptions{Search: []string{"x.test"}, Options: []string{"ndots:2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(EmbeddedResolvConf([]byte(tt.host), tt.o)); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
