package flow

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/flowfleet/flowfleet/pkg/atomicfile"
)

// NameCache is the long-term passive DNS cache of R-CACHE-1: address text → name, in file order. It is
// safe for concurrent use: a sensor names evicted flows and finished windows on two goroutines, and a
// window's chunks are named on several.
type NameCache struct {
	mu    sync.RWMutex
	path  string
	order []string
	names map[string]string
	dirty bool // the file does not hold what the cache holds (or does not exist yet)
}

// MaxNameCacheEntries bounds the cache; past it new addresses are not added.
const MaxNameCacheEntries = 1 << 20

// NewNameCache returns an empty cache that Save writes to path ("" for a cache kept in memory only).
func NewNameCache(path string) *NameCache {
	return &NameCache{path: path, names: make(map[string]string), dirty: true}
}

// LoadNameCache reads the cache file at path. A missing file is an empty cache. Lines that do not split
// into exactly two space-separated parts are skipped and reported in the returned warning; the reference
// aborts on them (R-ERR-8), FlowFleet rebuilds the file without them on the next Save.
func LoadNameCache(path string) (*NameCache, error) {
	c := NewNameCache(path)
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil // saved as an empty file at least (R-CACHE-3)
	}
	if err != nil {
		return c, fmt.Errorf("name cache %s: %w", path, err)
	}
	bad, firstBad := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		parts := strings.Split(strings.TrimSpace(sc.Text()), " ")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			if bad == 0 {
				firstBad = line
			}
			bad++
			continue
		}
		c.Set(parts[0], parts[1])
	}
	c.dirty = false
	if err := sc.Err(); err != nil {
		c.dirty = true
		return c, fmt.Errorf("name cache %s: damaged after line %d (%v); it will be rebuilt", path, line, err)
	}
	if bad > 0 {
		c.dirty = true
		return c, fmt.Errorf("name cache %s: %d damaged line(s), the first at line %d, ignored; the file will be rebuilt", path, bad, firstBad)
	}
	return c, nil
}

// Path returns the file the cache is saved to.
func (c *NameCache) Path() string { return c.path }

// Len returns the number of entries.
func (c *NameCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

// Lookup returns the cached name of an address text (R-CACHE-2).
func (c *NameCache) Lookup(addr string) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.names[addr]
	return n, ok
}

// Set stores a name, replacing an older one in place or appending a new entry (R-CACHE-3).
func (c *NameCache) Set(addr, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.names[addr]; ok {
		if old != name {
			c.names[addr] = name
			c.dirty = true
		}
		return
	}
	if len(c.order) >= MaxNameCacheEntries {
		return
	}
	c.names[addr] = name
	c.order = append(c.order, addr)
	c.dirty = true
}

// Save writes the cache as "<ip> <name>\n" lines atomically (temporary file, fsync, rename), when it
// changed since it was read or last written, or its file does not exist yet.
func (c *NameCache) Save() error {
	if c.path == "" {
		return nil
	}
	c.mu.Lock()
	if !c.dirty { // nothing new since the file was read or written: a sensor saves after every window
		c.mu.Unlock()
		return nil
	}
	var buf bytes.Buffer
	for _, a := range c.order {
		buf.WriteString(a)
		buf.WriteByte(' ')
		buf.WriteString(c.names[a])
		buf.WriteByte('\n')
	}
	c.dirty = false
	c.mu.Unlock()
	if err := atomicfile.WriteFile(c.path, buf.Bytes(), 0o644); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("name cache: %w", err)
	}
	return nil
}
