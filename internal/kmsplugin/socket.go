package kmsplugin

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Socket is the plugin's unix socket listener. It is created with its final
// mode before it gets its name: bound inside a fresh private (0700) folder
// next to the target, chmod/chown'ed there, then renamed into place. So no
// other user can ever connect, even for an instant. Close removes the
// socket, but only if the path still holds this very socket.
type Socket struct {
	net.Listener
	path string
	fi   os.FileInfo

	once sync.Once
	err  error
}

// ListenSocket listens on path with mode 0600, or 0660 owned by group when
// group (a name or numeric gid) is set. A stale socket left by a crash is
// removed; a live one (another plugin answers) or anything that is not a
// socket is refused with an error that says what to do.
func ListenSocket(path, group string) (*Socket, error) {
	gid := -1
	mode := os.FileMode(0o600)
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("socket.group %q: %w", group, err)
		}
		gid, mode = g, 0o660
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	tmpDir, err := os.MkdirTemp(dir, ".kmsplugin-")
	if err != nil {
		return nil, fmt.Errorf("socket %s: cannot create a private folder in %s: %w", path, dir, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // the name changes; Close removes it itself
	fail := func(err error) (*Socket, error) { _ = ul.Close(); return nil, fmt.Errorf("socket %s: %w", path, err) }
	if gid >= 0 {
		if err := os.Chown(tmp, -1, gid); err != nil {
			return fail(fmt.Errorf("cannot give it to group %s: %w", group, err))
		}
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &Socket{Listener: ul, path: path, fi: fi}, nil
}

// Path is the socket's path.
func (s *Socket) Path() string { return s.path }

// Close stops listening and removes the socket file if it is still ours.
func (s *Socket) Close() error {
	s.once.Do(func() {
		s.err = s.Listener.Close()
		if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
			if err := os.Remove(s.path); err != nil && s.err == nil {
				s.err = fmt.Errorf("socket %s: %w", s.path, err)
			}
		}
	})
	return s.err
}

// removeStale removes a socket at path that nobody answers on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: the path exists and is not a socket (%s): refusing to remove it; move it away or set socket.path", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("socket %s: another process is serving on it: stop it first (is a second kmsplugin running?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("socket %s: cannot tell whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("socket %s: cannot remove the stale socket: %w", path, err)
	}
	return nil
}

func lookupGroup(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	grp, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(grp.Gid)
}
