package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	errNotYet := errors.New("not yet: 2 of 3")
	errGone := errors.New("node is gone")
	type tc struct {
		// cond answers call n (from 1).
		cond    func(n int) (bool, error)
		timeout time.Duration
		calls   int      // exactly, when > 0
		want    []string // in the error; none: nil error
		is      []error  // errors.Is of the error
	}
	run := func(t *testing.T, tc tc) {
		ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
		defer cancel()
		calls := 0
		err := PollEvery(ctx, 5*time.Millisecond, "three holders", func() (bool, error) {
			calls++
			return tc.cond(calls)
		})
		if len(tc.want) == 0 {
			if err != nil {
				t.Fatalf("PollEvery: %v", err)
			}
		} else if err == nil {
			t.Fatalf("PollEvery succeeded after %d calls, want an error", calls)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q lacks %q", err, w)
			}
		}
		for _, target := range tc.is {
			if !errors.Is(err, target) {
				t.Errorf("error %q is not %v", err, target)
			}
		}
		if tc.calls > 0 && calls != tc.calls {
			t.Errorf("cond called %d times, want %d", calls, tc.calls)
		}
	}
	tests := map[string]tc{
		"ok/done at once": {
			cond: func(int) (bool, error) { return true, nil }, timeout: time.Second, calls: 1,
		},
		"ok/done on the fourth call": {
			cond:    func(n int) (bool, error) { return n == 4, errNotYet },
			timeout: 10 * time.Second, calls: 4,
		},
		"fail/timeout names what and the last error": {
			cond:    func(n int) (bool, error) { return false, fmt.Errorf("call %d: %w", n, errNotYet) },
			timeout: 50 * time.Millisecond,
			want:    []string{"timed out waiting for three holders", "not yet: 2 of 3"},
			is:      []error{context.DeadlineExceeded, errNotYet},
		},
		"fail/timeout without an error": {
			cond:    func(int) (bool, error) { return false, nil },
			timeout: 50 * time.Millisecond,
			want:    []string{"timed out waiting for three holders"},
			is:      []error{context.DeadlineExceeded},
		},
		"fail/stop ends at once": {
			cond: func(n int) (bool, error) {
				if n == 2 {
					return false, Stop(errGone)
				}
				return false, errNotYet
			},
			timeout: 10 * time.Second, calls: 2,
			want: []string{"node is gone"},
			is:   []error{errGone},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { run(t, tc) })
	}
}

// TestPollProcess: a wait on a process that exits ends at once, quoting its
// log; a wait on one that runs ends at the deadline, naming its log.
func TestPollProcess(t *testing.T) {
	never := func() (bool, error) { return false, errors.New("not listening") }

	p := newShellProcess(t, "echo cannot open the store; exit 4")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := PollProcess(ctx, p, 5*time.Millisecond, "it to serve", never)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("PollProcess of an exiting process: %v after %s, want an error before the deadline", err, time.Since(start))
	}
	for _, w := range []string{"sh-test exited (exit status 4) while waiting for it to serve", "cannot open the store", p.LogPath} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}

	q := newShellProcess(t, "exec sleep 60")
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer scancel()
	err = PollProcess(sctx, q, 5*time.Millisecond, "it to serve", never)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "not listening") || !strings.Contains(err.Error(), q.LogPath) {
		t.Fatalf("PollProcess of a running process: %v, want a timeout naming the last error and %s", err, q.LogPath)
	}
}
