package audit

import (
	"fmt"
	"sync"
)

// headSync moves the head file behind the log, off the append path: an
// append returns once its line is fsynced, and a goroutine then writes the
// newest (seq, mac) to the head file and fsyncs it, folding appends that
// came meanwhile into one write. The head is never ahead of the durable
// log (it is written after the line's fsync), so after a crash the log is
// at least as long as its head, which Open accepts. The window in which a
// cut tail would go unnoticed is one head write, a few milliseconds,
// instead of an fsync more on every release (measured in BENCHMARKS.md).
// The sealed high-water mark (mark.go) follows the head the same way.
type headSync struct {
	w   headWriter
	key []byte

	wake chan struct{}
	done chan struct{}

	mu  sync.Mutex
	seq uint64
	mac string
	// mark, if set, is raised after each head write (OpenMarked).
	mark    Mark
	written uint64
	err     error
	idle    *sync.Cond
}

func newHeadSync(path string, key []byte) *headSync {
	h := &headSync{w: headWriter{path: path}, key: key, wake: make(chan struct{}, 1), done: make(chan struct{})}
	h.idle = sync.NewCond(&h.mu)
	go h.run()
	return h
}

// moved records the new head and wakes the writer. It returns the error of
// an earlier head write, if any, once.
func (h *headSync) moved(seq uint64, mac string) error {
	h.mu.Lock()
	h.seq, h.mac = seq, mac
	err := h.err
	h.err = nil
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return err
}

func (h *headSync) run() {
	defer close(h.done)
	for range h.wake {
		h.mu.Lock()
		seq, mac, mark := h.seq, h.mac, h.mark
		h.mu.Unlock()
		err := h.w.write(h.key, seq, mac)
		if err == nil && mark != nil {
			if merr := mark.SetAuditMark(seq); merr != nil {
				err = fmt.Errorf("failed to record the high-water mark in the sealed store: %w", merr)
			}
		}
		h.mu.Lock()
		if err != nil {
			h.err = err
		} else {
			h.written = seq
		}
		h.idle.Broadcast()
		h.mu.Unlock()
	}
}

// flush waits until the newest head is written (or failed to be).
func (h *headSync) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.written < h.seq && h.err == nil {
		select {
		case h.wake <- struct{}{}:
		default:
		}
		h.idle.Wait()
	}
	err := h.err
	h.err = nil
	return err
}

// stop flushes, ends the writer and closes the head file.
func (h *headSync) stop() error {
	err := h.flush()
	close(h.wake)
	<-h.done
	h.w.close()
	return err
}

// setMark makes every later head write raise m too.
func (h *headSync) setMark(m Mark) {
	h.mu.Lock()
	h.mark = m
	h.mu.Unlock()
}
