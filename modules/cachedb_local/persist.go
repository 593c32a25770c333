package cachedblocal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sipedge/sipedge/internal/bglog"
	"github.com/sipedge/sipedge/runtime/msgctx"
)

// Restart persistency (OpenSIPS's enable_restart_persistency keeps the
// cache in a file-backed memory area; sipedge writes a snapshot file): the
// live collections are written to restart_persistency_dir/SnapshotFile
// every persistInterval when something changed, and by Flush; the first
// script that enables persistency reads the file back. As in OpenSIPS, an
// entry keeps the time it had left when the snapshot was taken, so time
// stands still while sipedge is down.

var (
	persistOn atomic.Bool
	dirty     atomic.Bool
	flushMu   sync.Mutex // one writer at a time
)

func markDirty() {
	if persistOn.Load() {
		dirty.Store(true)
	}
}

// logger receives the module's messages that belong to no SIP message
// (snapshot errors); see SetLogger.
var logger bglog.Logger

// SetLogger routes the module's background messages (level in OpenSIPS
// numbering, msgctx.L*) to the SIP runtime's log; by default they go to
// log/slog.
func SetLogger(f func(level int, text string)) { logger.Set(f) }

func logBackground(level int, text string) { logger.Log(level, text) }

func flusher() {
	for {
		time.Sleep(persistInterval)
		if !dirty.Load() {
			continue
		}
		if err := Flush(); err != nil {
			logBackground(msgctx.LErr, "cachedb_local: "+err.Error())
		}
	}
}

// Flush writes the snapshot now when restart persistency is on (the SIP
// runtime should call it on a clean shutdown); it is a no-op otherwise.
func Flush() error {
	cfg := cur.Load()
	if cfg.persist == "" {
		return nil
	}
	flushMu.Lock()
	defer flushMu.Unlock()
	dirty.Store(false)
	if err := writeSnapshot(cfg.persist, cfg.byName, now()); err != nil {
		dirty.Store(true)
		return fmt.Errorf("cannot write %s: %w", cfg.persist, err)
	}
	return nil
}

const snapshotMagic = "sipedge cachedb_local snapshot 1\n"

// writeSnapshot writes every live entry of colls to path, atomically
// (temporary file, fsync, rename). Records are: collection, key, value as
// uvarint-length-prefixed strings, then the remaining lifetime in
// nanoseconds as a uvarint (0: never expires).
func writeSnapshot(path string, colls map[string]*Collection, t int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	w := bufio.NewWriterSize(tmp, 64<<10)
	w.WriteString(snapshotMagic)
	names := make([]string, 0, len(colls))
	for n := range colls {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf []byte
	for _, n := range names {
		c := colls[n]
		for i := range c.shards {
			s := &c.shards[i]
			buf = buf[:0]
			s.mu.RLock()
			for k, e := range s.m {
				if e.expired(t) {
					continue
				}
				var ttl uint64
				if e.exp != 0 {
					ttl = uint64(e.exp - t)
				}
				buf = appendString(buf, n)
				buf = appendString(buf, k)
				buf = appendString(buf, e.val)
				buf = binary.AppendUvarint(buf, ttl)
			}
			s.mu.RUnlock()
			if _, err := w.Write(buf); err != nil {
				tmp.Close()
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readSnapshot loads path into the collections it names that colls has
// (entries of collections the script no longer defines are dropped, as
// OpenSIPS drops them). A missing file is an empty cache.
func readSnapshot(path string, colls map[string]*Collection) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapshotMagic {
		return 0, errors.New("not a cachedb_local snapshot")
	}
	t := now()
	n := 0
	for {
		coll, err := readString(r)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("corrupt snapshot after %d entries: %w", n, err)
		}
		key, err := readString(r)
		if err != nil {
			return n, fmt.Errorf("corrupt snapshot after %d entries: %w", n, err)
		}
		val, err := readString(r)
		if err != nil {
			return n, fmt.Errorf("corrupt snapshot after %d entries: %w", n, err)
		}
		ttl, err := binary.ReadUvarint(r)
		if err != nil {
			return n, fmt.Errorf("corrupt snapshot after %d entries: %w", n, io.ErrUnexpectedEOF)
		}
		c := colls[coll]
		if c == nil {
			continue
		}
		e := entry{val: val}
		if ttl != 0 {
			e.exp = t + int64(ttl)
		}
		s := c.shard(key)
		s.mu.Lock()
		s.m[key] = e
		s.mu.Unlock()
		n++
	}
}

// maxSnapshotString bounds one string read from a snapshot, so a corrupt
// length cannot allocate gigabytes.
const maxSnapshotString = 64 << 20

func readString(r *bufio.Reader) (string, error) {
	l, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if l > maxSnapshotString {
		return "", fmt.Errorf("string of %d bytes", l)
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", io.ErrUnexpectedEOF
	}
	return string(b), nil
}
