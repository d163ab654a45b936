package integration

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/cnet-dev/cnet/internal/testenv"
)

// readmeImageScript is README's one command that makes the busybox image, with ./cnet replaced
// by h's binary and socket.
func readmeImageScript(t *testing.T, h *testenv.Host) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var script []string
	in := false
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "    d=$(mktemp -d)") {
			in = true
		}
		if in {
			script = append(script, strings.TrimPrefix(line, "    "))
			if !strings.HasSuffix(line, "\\") {
				break
			}
		}
	}
	if len(script) == 0 {
		t.Fatal("README has no one-command busybox image")
	}
	return strings.ReplaceAll(strings.Join(script, "\n"), "sudo ./cnet", h.Bin+" -H unix://"+h.Socket)
}

// readmeStep is one `$ cnet …` command of README's seed walkthroughs and the output shown under
// it.
type readmeStep struct {
	cmd  string
	want []string
}

// readmeSteps reads the commands (continuation lines joined) and their shown output from the
// README section that starts with heading and ends at the next "## ".
func readmeSteps(t *testing.T, heading string) []readmeStep {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	start := strings.Index(readme, heading)
	if start < 0 {
		t.Fatalf("README has no %q", heading)
	}
	section := readme[start+len(heading):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var steps []readmeStep
	lines := strings.Split(section, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "    $ "):
			cmd := strings.TrimPrefix(line, "    $ ")
			for strings.HasSuffix(cmd, "\\") && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, "\\") + " " + strings.TrimSpace(lines[i])
			}
			steps = append(steps, readmeStep{cmd: cmd})
		case strings.HasPrefix(line, "    ") && len(steps) > 0:
			s := &steps[len(steps)-1]
			s.want = append(s.want, strings.TrimPrefix(line, "    "))
		case line != "" && !strings.HasPrefix(line, "    "):
			// Prose ends a block: its commands' output is what was shown so far.
			if len(steps) > 0 {
				steps[len(steps)-1].want = append(steps[len(steps)-1].want, "\x00end")
			}
		}
	}
	return steps
}

// varies is what changes from run to run: IDs (and the names made of them), times.
var varies = regexp.MustCompile(`[0-9a-f]{12,64}|veth[0-9a-f]{7}|time=[0-9.]+ ms`)

func normalizeLine(s string) string {
	return strings.Join(strings.Fields(varies.ReplaceAllString(s, "<v>")), " ")
}

// shownIn reports whether every line shown (blank lines aside; "..." for lines left out)
// appears in out in order, after normalizing what varies per run.
func shownIn(want []string, out string) bool {
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if n := normalizeLine(l); n != "" {
			got = append(got, n)
		}
	}
	i := 0
	for _, w := range want {
		w = normalizeLine(w)
		if w == "" || w == "..." || w == "\x00end" {
			continue
		}
		for i < len(got) && got[i] != w {
			i++
		}
		if i == len(got) {
			return false
		}
		i++
	}
	return true
}

// TestReadmeSeeds runs README's seed walkthroughs as written, in order, in a throwaway host with
// README's busybox image: every command succeeds, and what README shows under a command is what
// it prints (IDs, interface names of IDs and ping times aside; the round robin ping, whose order
// is random, is only run). The macvlan parent ext0 is made when the walkthrough needs it: a veth
// whose peer is in a client host (newSegment).
func TestReadmeSeeds(t *testing.T) {
	h := testenv.NewHost(t)
	h.MustRun("sh", "-c", readmeImageScript(t, h))
	runReadmeSeeds(t, h, "cnet() { "+h.Bin+" -H unix://"+h.Socket+` "$@"; }; `, "cnet")
	cleanReadmeSeeds(t, h)
}

// runReadmeSeeds runs the seed walkthroughs through the shell function cli that define
// makes (cnet, or docker on cnet's socket).
func runReadmeSeeds(t *testing.T, h *testenv.Host, define, cli string) {
	t.Helper()
	for _, s := range readmeSteps(t, "## The seeds, with cnet") {
		if strings.Contains(s.cmd, "parent=ext0") {
			newSegment(t, h, "ext0", "192.168.57.100/24")
		}
		cmd := strings.ReplaceAll(s.cmd, "curl ", "busybox wget -qO- ")
		cmd = strings.ReplaceAll(cmd, "cnet ", cli+" ")
		out, err := h.Run("sh", "-c", define+cmd)
		if err != nil {
			t.Errorf("$ %s\n%s\nfailed: %v", cmd, out, err)
			continue
		}
		if !strings.Contains(s.cmd, "yceffort |") && !shownIn(s.want, out) {
			t.Errorf("$ %s\nprinted\n%s\nREADME shows\n%s", cmd, out, strings.Join(s.want, "\n"))
		}
	}
}

// cleanReadmeSeeds removes what the walkthroughs made.
func cleanReadmeSeeds(t *testing.T, h *testenv.Host) {
	t.Helper()
	cnet := "cnet() { " + h.Bin + " -H unix://" + h.Socket + ` "$@"; }; `
	out, err := h.Run("sh", "-c", cnet+"cnet rm -f $(cnet ps -aq) && cnet network prune -f && cnet rmi busybox")
	if err != nil {
		t.Fatalf("cleaning up: %v\n%s", err, out)
	}
}
