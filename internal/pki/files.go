package pki

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrExists is returned when a file the caller asked for already exists:
// keys and certificates are never overwritten.
var ErrExists = errors.New("file already exists")

// writeTemp writes b to a new temporary file next to path, with mode, and
// syncs it. The caller links or renames it into place and removes it.
func writeTemp(path string, b []byte, mode os.FileMode) (string, error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("failed to create a temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	fail := func(err error) (string, error) {
		f.Close()
		os.Remove(tmp)
		return "", err
	}
	// CreateTemp makes the file 0600; set the final mode explicitly so the
	// umask plays no part.
	if err := f.Chmod(mode); err != nil {
		return fail(fmt.Errorf("failed to set mode of %s: %w", tmp, err))
	}
	if _, err := f.Write(b); err != nil {
		return fail(fmt.Errorf("failed to write %s: %w", tmp, err))
	}
	if err := f.Sync(); err != nil {
		return fail(fmt.Errorf("failed to sync %s: %w", tmp, err))
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("failed to close %s: %w", tmp, err)
	}
	return tmp, nil
}

// createFile writes b to path with mode, all or nothing, and fails with
// ErrExists if path exists: the content appears under its name complete
// (link of a synced temporary file) or not at all.
func createFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, b, mode)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w; it is never overwritten: move it away or choose another name", path, ErrExists)
		}
		return fmt.Errorf("failed to create %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// replaceFile writes b to path with mode atomically, replacing any file
// there: readers see the old content or the new, never a mix.
func replaceFile(path string, b []byte, mode os.FileMode) error {
	tmp, err := writeTemp(path, b, mode)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to replace %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open folder %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to sync folder %s: %w", dir, err)
	}
	return nil
}

// refuseExisting returns an ErrExists error naming the first path that
// exists, so that a command checks all its outputs before it writes any.
func refuseExisting(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s: %w; it is never overwritten: move it away or choose another name", p, ErrExists)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("failed to check %s: %w", p, err)
		}
	}
	return nil
}

// readPrivate reads a private key file and refuses one that group or others
// may read or write, checked on the open descriptor.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open key %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat key %s: %w", path, err)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("key %s has mode %04o, open to group or others; run: chmod 600 %s", path, m, path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("failed to read key %s: %w", path, err)
	}
	return b, nil
}
