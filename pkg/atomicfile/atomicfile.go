// Package atomicfile replaces files whole or not at all: content goes to a temporary file in the target's
// directory, which is renamed over the target, so a reader sees the old or the new content, never a part,
// and a failed write leaves the old file and no temporary file behind.
//
// [WriteFile] and [WriteFunc] also sync the file before the rename and the directory after it, so the new
// content survives a crash of the machine once they return: the sensor's spool state, the collector's
// samples and the name cache use them. [ReplaceFunc] skips the syncs, for outputs that can be made again
// (flowctl convert).
package atomicfile

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
)

// WriteFile writes data to path through a temporary file in the same directory, synced and renamed
// into place, so that readers see the old or the new content, never a part.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc is WriteFile for content produced by write, through a buffered writer.
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	return replace(path, perm, true, write)
}

// ReplaceFunc is WriteFunc without the sync: readers still see the old or the new content,
// never a part, but a crash of the machine soon after may leave either, or an empty file. For outputs
// that can be made again, where the sync would be a good part of the time taken.
func ReplaceFunc(path string, perm os.FileMode, write func(io.Writer) error) error {
	return replace(path, perm, false, write)
}

// replace is WriteFunc (sync true) and ReplaceFunc (sync false).
func replace(path string, perm os.FileMode, sync bool, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name)
	bw := bufio.NewWriterSize(tmp, 256*1024)
	if err := write(bw); err != nil {
		tmp.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	if !sync {
		return nil
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
