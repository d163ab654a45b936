// Package store persists cnet's state (networks, endpoints, containers) in one bbolt file under
// the data root. Every record is JSON in a bucket named after its kind; each call is one
// transaction, so a crash leaves either the old or the new record, never half of one.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Buckets used by cnet.
const (
	Networks   = "networks"
	Endpoints  = "endpoints"
	Containers = "containers"
	// Sandboxes holds what running sandboxes publish (the controller's).
	Sandboxes = "sandboxes"
	// CNI holds the attachments CNI runtimes asked for (the daemon's), by sandbox and
	// interface.
	CNI = "cni"
	// Reservations holds addresses another engine's IPAM calls reserved on a network before
	// (and after) any endpoint holds them (the controller's; see controller/handoff.go).
	Reservations = "reservations"
	// Docker holds dockerd's endpoints on cnet networks (the daemon's; see daemon/docker.go).
	Docker = "docker"
	// DockerNetworks holds Docker networks that are other names of existing cnet networks.
	DockerNetworks = "docker-networks"
)

// Store is a handle on the state file. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (or creates) the state file in dataRoot. A second daemon on the same data root
// fails here rather than corrupting the first one's state.
func Open(dataRoot string) (*Store, error) {
	if err := os.MkdirAll(dataRoot, 0o700); err != nil {
		return nil, fmt.Errorf("creating data root %s: %w", dataRoot, err)
	}
	path := filepath.Join(dataRoot, "cnet.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("state file %s is locked: is another cnet daemon using data root %s?", path, dataRoot)
		}
		return nil, fmt.Errorf("opening state file %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{Networks, Endpoints, Containers, Sandboxes, CNI, Reservations, Docker, DockerNetworks} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising state file %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close releases the state file.
func (s *Store) Close() error { return s.db.Close() }

// Put writes v as JSON under key.
func (s *Store) Put(bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s/%s: %w", bucket, key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Put([]byte(key), data)
	})
	if err != nil {
		return fmt.Errorf("writing %s/%s to the state file: %w", bucket, key, err)
	}
	return nil
}

// Delete removes key; removing a missing key is not an error.
func (s *Store) Delete(bucket, key string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("deleting %s/%s from the state file: %w", bucket, key, err)
	}
	return nil
}

// Load decodes every record of bucket into a fresh T and hands it to fn. The records are
// read in one transaction and handed over after it closed, so fn may write to the store: a
// write while a read transaction is open in the same goroutine can wait forever for bbolt to
// grow its file (the remap waits for every reader to finish).
func Load[T any](s *Store, bucket string, fn func(key string, v *T) error) error {
	type record struct{ key, data []byte }
	var records []record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).ForEach(func(k, data []byte) error {
			records = append(records, record{append([]byte(nil), k...), append([]byte(nil), data...)})
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("reading %s from the state file: %w", bucket, err)
	}
	for _, r := range records {
		v := new(T)
		if err := json.Unmarshal(r.data, v); err != nil {
			return fmt.Errorf("decoding %s/%s from the state file: %w", bucket, r.key, err)
		}
		if err := fn(string(r.key), v); err != nil {
			return err
		}
	}
	return nil
}
