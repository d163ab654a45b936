package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// A CNI DEL or GC that finds the daemon down is not lost: the plugin writes it as a pending
// request into a directory beside the daemon's socket, and the daemon completes it when it next
// starts, before it serves anyone. Runtimes treat a failed DEL as a container that may still
// hold resources and retry it for ever (or give up and leak them); a DEL that cannot fail while
// the daemon is merely down is what the CNI spec asks of DEL, and what the daemon does at its
// start (endpoint removed, address freed, ports withdrawn) is exactly what the DEL would have
// done.

// CNIPendingDir is where requests wait for the daemon listening on socketPath: beside the
// socket, as only whoever may use the socket may ask for them.
func CNIPendingDir(socketPath string) string {
	return filepath.Join(filepath.Dir(socketPath), "cni-pending")
}

// CNIPending is one waiting request: exactly one of Del and GC.
type CNIPending struct {
	Del *CNIDetachRequest `json:"Del,omitempty"`
	GC  *CNIGCRequest     `json:"GC,omitempty"`
}

// CNIPendingFile is a pending request as read back, with the file that holds it (removed once
// the request is done).
type CNIPendingFile struct {
	Path    string
	Request CNIPending
}

// WriteCNIPending stores p in dir and returns its path. The file is written whole under a
// temporary name and renamed, so that a daemon never reads half of one; names sort in the
// order they were written, which is the order the daemon completes them in (a GC must not
// run before a DEL the runtime sent first).
func WriteCNIPending(dir string, p CNIPending) (string, error) {
	if (p.Del == nil) == (p.GC == nil) {
		return "", errors.New("a pending CNI request is one DEL or one GC")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating the directory of pending CNI requests: %w", err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	// Zero-padded nanoseconds, so that names sort as times do.
	name := fmt.Sprintf("%020d-%d.json", time.Now().UnixNano(), os.Getpid())
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("writing a pending CNI request: %w", err)
	}
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("writing a pending CNI request: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("writing a pending CNI request: %w", err)
	}
	return path, nil
}

// ReadCNIPending lists the requests waiting in dir, oldest first; a missing directory holds
// none. A file that cannot be decoded is returned as an error with its path, so that the
// daemon can say which and set it aside.
func ReadCNIPending(dir string) ([]CNIPendingFile, []error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("listing pending CNI requests: %w", err)}
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && filepath.Ext(e.Name()) == ".json" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []CNIPendingFile
	var errs []error
	for _, name := range names {
		path := filepath.Join(dir, name)
		f := CNIPendingFile{Path: path}
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, &f.Request)
		}
		if err == nil && (f.Request.Del == nil) == (f.Request.GC == nil) {
			err = errors.New("neither one DEL nor one GC")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("pending CNI request %s: %w", path, err))
			continue
		}
		out = append(out, f)
	}
	return out, errs
}
