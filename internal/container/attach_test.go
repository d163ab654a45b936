package container

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAttach(t *testing.T) {
	requireRoot(t)
	path := bbPath(t)
	for _, tc := range []struct {
		name      string
		spec      Spec
		input     string
		halfClose bool
		// want checks what the client received.
		want func(t *testing.T, got []byte)
	}{
		{
			name: "streams apart",
			spec: Spec{Args: []string{"sh", "-c", "echo out; echo err >&2; exit 4"}},
			want: func(t *testing.T, got []byte) {
				stdout, stderr := demux(t, got)
				if stdout != "out\n" || stderr != "err\n" {
					t.Errorf("stdout %q stderr %q", stdout, stderr)
				}
			},
		},
		{
			name:      "stdin",
			spec:      Spec{Args: []string{"cat"}, OpenStdin: true},
			input:     "hello\nworld\n",
			halfClose: true,
			want: func(t *testing.T, got []byte) {
				if stdout, stderr := demux(t, got); stdout != "hello\nworld\n" || stderr != "" {
					t.Errorf("stdout %q stderr %q", stdout, stderr)
				}
			},
		},
		{
			name: "no stdin",
			spec: Spec{Args: []string{"cat"}},
			want: func(t *testing.T, got []byte) {
				if len(got) != 0 {
					t.Errorf("got %q from cat of /dev/null", got)
				}
			},
		},
		{
			name: "tty",
			spec: Spec{Args: []string{"sh", "-c", "echo hi; tty; echo err >&2"}, Tty: true},
			want: func(t *testing.T, got []byte) {
				if !bytes.HasPrefix(got, []byte("hi\r\n/dev/pts/")) || !bytes.HasSuffix(got, []byte("err\r\n")) {
					t.Errorf("raw tty output %q", got)
				}
			},
		},
		{
			name:      "tty stdin",
			spec:      Spec{Args: []string{"sh", "-c", "read line; echo got:$line"}, Tty: true, OpenStdin: true},
			input:     "abc\n",
			halfClose: true,
			want: func(t *testing.T, got []byte) {
				// The terminal echoes the input before the command answers.
				if string(got) != "abc\r\ngot:abc\r\n" {
					t.Errorf("raw tty output %q", got)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.ID, spec.Env, spec.Attach = "attach", []string{path}, true
			c := start(t, spec)
			if Pid(c.dir) != 0 {
				t.Fatal("process started before a client attached")
			}
			a, err := Attach(c.dir, spec.Tty)
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			if a.Tty() != spec.Tty {
				t.Errorf("Tty() = %v", a.Tty())
			}
			got, err := serve(t, a, tc.input, tc.halfClose)
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
			tc.want(t, got)
			st, ok := c.wait(t)
			if !ok {
				t.Fatal("no exit recorded")
			}
			// The log holds the same bytes the client got.
			logged, err := OpenLog(c.dir)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(logged)
			logged.Close()
			if !bytes.Equal(buf.Bytes(), got) {
				t.Errorf("log %q differs from attached output %q", buf.Bytes(), got)
			}
			if tc.name == "streams apart" && st.Code != 4 {
				t.Errorf("exit code %d, want 4", st.Code)
			}
		})
	}
}

// A client that goes away must not stop the process or its log.
func TestAttachClientGone(t *testing.T) {
	requireRoot(t)
	c := start(t, Spec{ID: "gone", Args: []string{"sh", "-c", "sleep 0.3; i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done"},
		Env: []string{bbPath(t)}, Attach: true})
	a, err := Attach(c.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	srv, cli := connPair(t)
	done := make(chan error, 1)
	go func() { done <- a.Serve(srv) }()
	cli.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the client went away")
	}
	st, ok := c.wait(t)
	if !ok || st.Code != 0 {
		t.Fatalf("exit %+v %v", st, ok)
	}
	stdout, _ := c.logStreams(t)
	if n := strings.Count(stdout, "\n"); n != 2000 || !strings.HasSuffix(stdout, "line 1999\n") {
		t.Errorf("log has %d lines, want 2000", n)
	}
}

// A detached container can be attached to later, and not at all once it ended.
func TestAttachLater(t *testing.T) {
	requireRoot(t)
	c := start(t, Spec{ID: "later", Args: []string{"sh", "-c", "read x; echo got:$x"}, Env: []string{bbPath(t)}, OpenStdin: true})
	waitPid(t, c.dir)
	a, err := Attach(c.dir, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := serve(t, a, "ping\n", false)
	if err != nil {
		t.Errorf("Serve: %v", err)
	}
	if stdout, _ := demux(t, got); stdout != "got:ping\n" {
		t.Errorf("stdout %q", stdout)
	}
	c.wait(t)
	if _, err := Attach(c.dir, false); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Attach after exit: %v, want ErrNotRunning", err)
	}
}

func TestAttachLongDir(t *testing.T) {
	requireRoot(t)
	spec := Spec{ID: "long", Args: []string{"echo", "hi"}, Env: []string{bbPath(t)}, Attach: true, NetNSPath: newNetns(t)}
	dir := t.TempDir() + "/" + strings.Repeat("d", 100)
	p, err := Start(dir, spec)
	if err != nil {
		t.Fatal(err)
	}
	c := &testContainer{dir: dir, proc: p}
	t.Cleanup(func() { c.kill(t) })
	a, err := Attach(dir, false)
	if err != nil {
		t.Fatalf("Attach with a %d-byte socket path: %v", len(dir)+12, err)
	}
	got, _ := serve(t, a, "", false)
	if stdout, _ := demux(t, got); stdout != "hi\n" {
		t.Errorf("stdout %q", stdout)
	}
	c.wait(t)
}
