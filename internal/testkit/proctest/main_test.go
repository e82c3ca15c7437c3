package proctest

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalTB records a Fatalf and ends its goroutine, as testing does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestWaitForErr: it returns once cond returns nil, and on timeout fails
// naming what it waited for and the last error cond gave.
func TestWaitForErr(t *testing.T) {
	n := 0
	WaitForErr(t, 10*time.Second, "the third try", func() error {
		if n++; n < 3 {
			return fmt.Errorf("try %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}

	f := &fatalTB{TB: t}
	tries := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		WaitForErr(f, 200*time.Millisecond, "never", func() error {
			tries++
			return errors.New("still down: try " + fmt.Sprint(tries))
		})
	}()
	<-done
	if want := fmt.Sprintf("waiting for never: still down: try %d", tries); tries < 2 || !strings.Contains(f.msg, want) {
		t.Fatalf("after %d tries: message %q, want it to contain %q", tries, f.msg, want)
	}
}
