package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultPollInterval is how often Poll asks: often enough that a wait ends
// within a few tens of milliseconds of what it waits for, seldom enough
// that a wait costs nothing on a loaded 2-core machine.
const DefaultPollInterval = 50 * time.Millisecond

// Poll is PollEvery at DefaultPollInterval.
func Poll(ctx context.Context, what string, cond func() (bool, error)) error {
	return PollEvery(ctx, DefaultPollInterval, what, cond)
}

// PollEvery calls cond at once and then every interval until it reports
// done, and returns nil. It is the one way the e2e suite waits: bounded by
// ctx's deadline, never by a bare sleep.
//
// cond's error says why it is not done yet; PollEvery keeps the last one.
// When ctx ends first, the error says "timed out waiting for <what>", with
// ctx's error and that last one. A cond that knows the wait is hopeless (the
// process it waits for exited) returns Stop(err), and PollEvery returns err
// at once.
func PollEvery(ctx context.Context, interval time.Duration, what string, cond func() (bool, error)) error {
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("timed out waiting for %s: %w (last: %w)", what, ctx.Err(), last)
			}
			return fmt.Errorf("timed out waiting for %s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// Stop wraps err so that PollEvery returns it at once instead of polling on.
func Stop(err error) error { return stopError{err} }

type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// PollProcess is PollEvery for a wait on p (until it serves, answers, is
// ready): it also ends, with an error that quotes the end of p's log, as
// soon as p exits, since what it waits for will not happen then.
func PollProcess(ctx context.Context, p *Process, interval time.Duration, what string, cond func() (bool, error)) error {
	exited, exitErr := p.Exited()
	err := PollEvery(ctx, interval, what, func() (bool, error) {
		ok, err := cond()
		if ok {
			return true, nil
		}
		select {
		case <-exited:
			tail, _ := p.LogTail(15)
			return false, Stop(fmt.Errorf("%s exited (%v) while waiting for %s; last lines of %s:\n%s", p.Name, exitErr(), what, p.LogPath, tail))
		default:
			return false, err
		}
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w; see %s", err, p.LogPath)
	}
	return err
}
