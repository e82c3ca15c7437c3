package gossip

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/keyshare/keyshare/pkg/transport/lograte"
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

type warnLimiter = lograte.Limiter[netip.Addr]

func newWarnLimiter() *warnLimiter {
	return lograte.New[netip.Addr](warnWindow, warnBurst, maxWarnSources)
}

// warnAbout logs a warning about something src did, within the limit.
func (t *Transport) warnAbout(src netip.Addr, msg string, args ...any) {
	ok, left := t.warns.Allow(src)
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
