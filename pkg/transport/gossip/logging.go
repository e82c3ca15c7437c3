package gossip

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// memberlistLogger adapts memberlist's "[LEVEL] memberlist: text" lines to
// structured records on l.
func memberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(&slogWriter{l: l}, "", 0)
}

type slogWriter struct{ l *slog.Logger }

var _ io.Writer = (*slogWriter)(nil)

var levelPrefixes = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w *slogWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if rest, ok := bytes.CutPrefix(msg, lp.prefix); ok {
			level, msg = lp.level, bytes.TrimSpace(rest)
			break
		}
	}
	msg = bytes.TrimPrefix(msg, []byte("memberlist: "))
	w.l.Log(context.Background(), level, string(msg), "component", "memberlist")
	return len(p), nil
}

// Warnings about what a remote host did (refused connections, packets,
// streams) are bounded per source address: at most warnBurst per
// warnWindow, so a host that reconnects in a loop cannot fill the log. The
// next warning logged for a source says how many were left out.
const (
	warnWindow     = time.Minute
	warnBurst      = 5
	maxWarnSources = 4096
)

type warnCount struct {
	start      time.Time
	logged     int
	suppressed int
}

type warnLimiter struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[netip.Addr]*warnCount
}

func newWarnLimiter() *warnLimiter {
	return &warnLimiter{now: time.Now, by: map[netip.Addr]*warnCount{}}
}

// allow reports whether a warning about src is logged, and how many were
// left out before it.
func (l *warnLimiter) allow(src netip.Addr) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	c, ok := l.by[src]
	if !ok || now.Sub(c.start) >= warnWindow {
		if !ok && len(l.by) >= maxWarnSources {
			clear(l.by)
		}
		left := 0
		if ok {
			left = c.suppressed
		}
		l.by[src] = &warnCount{start: now, logged: 1}
		return true, left
	}
	if c.logged < warnBurst {
		c.logged++
		left := c.suppressed
		c.suppressed = 0
		return true, left
	}
	c.suppressed++
	return false, 0
}

// warnAbout logs a warning about something src did, within the limit.
func (t *Transport) warnAbout(src netip.Addr, msg string, args ...any) {
	ok, left := t.warns.allow(src)
	if !ok {
		return
	}
	if left > 0 {
		args = append(args, "not_logged_before", left)
	}
	t.log.Warn(msg, args...)
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}
