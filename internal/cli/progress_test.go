package cli

import (
	"bytes"
	"testing"

	"github.com/cnet-dev/cnet/internal/api"
)

var pullSteps = []api.Progress{
	{Status: "1: Pulling from bb"},
	{ID: "aaa", Status: "Pulling fs layer", Layer: true},
	{ID: "bbb", Status: "Pulling fs layer", Layer: true},
	{ID: "aaa", Status: "Downloading", Layer: true, Current: 500, Total: 1000},
	{ID: "aaa", Status: "Download complete", Layer: true},
	{ID: "bbb", Status: "Pull complete", Layer: true},
	{Status: "Digest: sha256:x"},
}

// TestProgressPrinter: on a terminal each layer's line is rewritten in place (up to its line,
// clear, write, back down); elsewhere each step is a line and byte counts are left out.
func TestProgressPrinter(t *testing.T) {
	for _, tt := range []struct {
		name string
		tty  bool
		want string
	}{
		{"plain", false, "1: Pulling from bb\naaa: Pulling fs layer\nbbb: Pulling fs layer\naaa: Download complete\nbbb: Pull complete\nDigest: sha256:x\n"},
		{"terminal", true, "\x1b[2K\r1: Pulling from bb\n" +
			"\n\x1b[1A\x1b[2K\raaa: Pulling fs layer\r\x1b[1B" +
			"\n\x1b[1A\x1b[2K\rbbb: Pulling fs layer\r\x1b[1B" +
			"\x1b[2A\x1b[2K\raaa: Downloading [=========================>                         ]     500B/1kB\r\x1b[2B" +
			"\x1b[2A\x1b[2K\raaa: Download complete\r\x1b[2B" +
			"\x1b[1A\x1b[2K\rbbb: Pull complete\r\x1b[1B" +
			"\x1b[2K\rDigest: sha256:x\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			p := &progressPrinter{out: &out, tty: tt.tty, lines: map[string]int{}}
			for _, m := range pullSteps {
				p.show(m)
			}
			if out.String() != tt.want {
				t.Errorf("got\n%q\nwant\n%q", out.String(), tt.want)
			}
		})
	}
}
