package shares

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// ErrLoosePermissions is returned when a file or folder holding secrets can
// be read or written by group or others.
var ErrLoosePermissions = errors.New("permissions too open")

// maxSecretFile bounds how much ReadSecretFile reads.
const maxSecretFile = 1 << 20

// checkMode refuses f when group or others may read or write it. It uses
// fstat on the open descriptor, so a file swapped after open is not missed.
func checkMode(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o066 == 0 {
		return nil
	}
	want := "600"
	if fi.IsDir() {
		want = "700"
	}
	return fmt.Errorf("%s: %w (mode %#o): run 'chmod %s %s'", path, ErrLoosePermissions, fi.Mode().Perm(), want, path)
}

// ReadSecretFile reads a small file that holds secrets, after checking its
// permissions on the open descriptor.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	if err := checkMode(f, path); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		Zero(b)
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	if len(b) > maxSecretFile {
		Zero(b)
		return nil, fmt.Errorf("%s: larger than %d bytes: is it the right file?", path, maxSecretFile)
	}
	return b, nil
}

// checkDir refuses a folder that group or others may read or write.
func checkDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open folder %s: %w", dir, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a folder", dir)
	}
	return checkMode(f, dir)
}

// WriteFileAtomic writes b to path with mode 0600 so that readers see the
// old file or the new one, never a part: temp file in the same folder, fsync,
// rename, fsync of the folder. On error the old file is untouched and the
// temp file is removed.
func WriteFileAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to create a temp file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("failed to chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("failed to write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to rename %s to %s: %w", tmp, path, err)
	}
	return syncDir(dir)
}

// syncDir fsyncs a folder so that a rename or removal in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to fsync folder %s: %w", dir, err)
	}
	return nil
}
