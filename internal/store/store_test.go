package store

import (
	"strings"
	"testing"
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
