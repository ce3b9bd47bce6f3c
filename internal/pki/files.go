package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	certMode = 0o644
	keyMode  = 0o600
	dirMode  = 0o700
)

// refuseExisting fails if any of paths exists (or cannot be checked).
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		_, err := os.Lstat(p)
		switch {
		case err == nil:
			return fmt.Errorf("%s already exists; refusing to overwrite it (use --force to replace it)", p)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("check %s: %w", p, err)
		}
	}
	return nil
}

// writePair writes a key (0600) and then its certificate (0644). Without force, each file is created
// exclusively, so an existing file is never replaced even if it appeared after refuseExisting; with
// force, each is written to a temporary file and renamed over the old one.
func writePair(dir, certPath string, certPEM []byte, keyPath string, keyPEM []byte, force bool) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	if err := writeFile(keyPath, keyPEM, keyMode, force); err != nil {
		return err
	}
	if err := writeFile(certPath, certPEM, certMode, force); err != nil {
		if !force {
			_ = os.Remove(keyPath) // do not leave a key without its certificate
		}
		return err
	}
	return nil
}

func writeFile(path string, data []byte, mode os.FileMode, force bool) error {
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%s already exists; refusing to overwrite it (use --force to replace it)", path)
			}
			return fmt.Errorf("create %s: %w", path, err)
		}
		if err := finish(f, path, data, mode); err != nil {
			_ = os.Remove(path) // we created it: leave no partial file behind
			return err
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	if err := finish(tmp, tmp.Name(), data, mode); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

// finish sets the mode (the umask may have narrowed it, and CreateTemp uses 0600), writes, syncs and
// closes f.
func finish(f *os.File, path string, data []byte, mode os.FileMode) error {
	err := f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
