package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

type rec struct{ A string }

func TestPutLoadDelete(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if err := s.Put(Networks, k, rec{A: k + "!"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(Networks, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(Networks, "missing"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	s.Close()

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := map[string]string{}
	if err := Load(s, Networks, func(k string, v *rec) error { got[k] = v.A; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["b"] != "b!" {
		t.Fatalf("after reopen got %v, want only b", got)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "another cnet daemon") {
		t.Fatalf("second open: got %v, want a 'locked by another daemon' error", err)
	}
}

// TestLoadCallbackMayWrite writes enough from inside Load's callback to make bbolt grow its
// file: with the read transaction still open the growth would wait for it forever (it did:
// a restarting daemon hung in the middle of dropping records of gone sandboxes).
func TestLoadCallbackMayWrite(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Closed only once Load returned: a hung writer holds the lock Close waits for.
	if err := s.Put(Sandboxes, "a", map[string]string{"x": "y"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- Load(s, Sandboxes, func(string, *map[string]string) error {
			big := map[string]string{"pad": strings.Repeat("x", 64<<10)}
			for i := range 200 {
				if err := s.Put(Containers, fmt.Sprint(i), big); err != nil {
					return err
				}
			}
			return s.Delete(Sandboxes, "a")
		})
	}()
	select {
	case err := <-done:
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Load hung: a write from its callback waited for Load's own read transaction")
	}
}
