package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/cnet-dev/cnet/internal/api"
)

// progressPrinter shows a pull's steps as Docker's CLI does. On a terminal every layer keeps
// one line, rewritten in place (the cursor moves up to it and back) as the layer goes from
// "Pulling fs layer" through a download bar to "Pull complete"; the image's own lines are
// printed below. Otherwise each step is a plain line and the byte counts of a download, which
// would be hundreds of lines in a log, are left out.
type progressPrinter struct {
	out io.Writer
	tty bool
	// lines holds each layer's line, counted from the first layer line of the current block.
	lines map[string]int
}

func newProgressPrinter(out io.Writer) *progressPrinter {
	f, ok := out.(*os.File)
	return &progressPrinter{out: out, tty: ok && isTerminal(f), lines: map[string]int{}}
}

func (p *progressPrinter) show(m api.Progress) {
	text := m.Status
	if m.ID != "" {
		text = m.ID + ": " + m.Status
	}
	if !p.tty {
		if m.Status != "Downloading" {
			fmt.Fprintln(p.out, text)
		}
		return
	}
	if m.Total > 0 {
		text += " " + api.ProgressBar(m.Current, m.Total, 50)
	}
	if !m.Layer || m.ID == "" {
		// A line that is not a layer's ends the block: later layers start a new one.
		p.lines = map[string]int{}
		fmt.Fprintf(p.out, "\x1b[2K\r%s\n", text)
		return
	}
	line, ok := p.lines[m.ID]
	if !ok {
		line = len(p.lines)
		p.lines[m.ID] = line
		fmt.Fprint(p.out, "\n")
	}
	up := len(p.lines) - line
	fmt.Fprintf(p.out, "\x1b[%dA\x1b[2K\r%s\r\x1b[%dB", up, text, up)
}
