package identity

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch reloads the identity whenever one of its files changes, until ctx
// is done. It watches the folders holding the files rather than the files,
// so that replacing a file by an atomic rename, or swapping a Kubernetes
// style ..data symlink, is seen. As a safety net it also reloads every
// PollInterval. Failed reloads are logged (see Reload); Watch itself returns
// an error only if it cannot start watching.
func (s *Source) Watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("identity: failed to start file watcher: %w", err)
	}
	defer w.Close()

	names := map[string]bool{}
	dirs := map[string]bool{}
	for _, f := range []string{s.opts.CAFile, s.opts.CertFile, s.opts.KeyFile, s.opts.CRLFile} {
		if f == "" {
			continue
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return fmt.Errorf("identity: failed to resolve %s: %w", f, err)
		}
		names[abs] = true
		dirs[filepath.Dir(abs)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			return fmt.Errorf("identity: failed to watch folder %s (check it exists and is readable): %w", d, err)
		}
	}
	// Pick up anything that changed before the watches were in place.
	_ = s.Reload()

	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if relevant(ev.Name, names) {
				debounce.Reset(s.opts.Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			s.log.Warn("identity file watcher error; relying on the periodic reload", "err", err)
		case <-debounce.C:
			_ = s.Reload()
		case <-poll.C:
			_ = s.Reload()
		}
	}
}

// relevant reports whether a change to name may change one of the watched
// files: the file itself, or a hidden ..name entry used by symlink swaps.
func relevant(name string, files map[string]bool) bool {
	abs, err := filepath.Abs(name)
	if err != nil {
		return true
	}
	return files[abs] || strings.HasPrefix(filepath.Base(abs), "..")
}
