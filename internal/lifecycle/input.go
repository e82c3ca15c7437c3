package lifecycle

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/keyshare/keyshare/pkg/shares"
)

// ErrWrongGeneration is returned by Collector.Add for a well-formed share
// that matches no share of the manifest: one of another generation (an
// older one, from before a rekey), of another Vault, or with a typo that
// still decodes.
var ErrWrongGeneration = errors.New("share matches no share of the current generation")

// Collector validates break-glass shares as they are entered: format and
// length, duplicates, and, when a manifest is known, its digests (which
// also finds each share's index). Nothing is submitted until Done.
type Collector struct {
	// Manifest, if its Generation is not 0, is what every share must match.
	Manifest shares.Manifest
	// Threshold is how many shares to collect.
	Threshold int
	got       []shares.Share
	names     []string
}

// Add validates one share. name says where it came from ("share 2",
// "file keys.txt line 3") and is used in the error, which never contains
// the input.
func (c *Collector) Add(name, text string) error {
	b, err := shares.ParseShare(name, text)
	if err != nil {
		return err
	}
	s := shares.Share{Value: b}
	for i, prev := range c.got {
		switch {
		case string(prev.Value) == string(b):
			shares.Zero(b)
			return fmt.Errorf("%s: %w: same as %s; enter a different key", name, shares.ErrDuplicateShare, c.names[i])
		case prev.Value[shares.ShareLen-1] == b[shares.ShareLen-1]:
			shares.Zero(b)
			return fmt.Errorf("%s: %w: same x-coordinate as %s, so one of them has a typo or they are of different generations", name, shares.ErrDuplicateShare, c.names[i])
		}
	}
	if c.Manifest.Generation != 0 {
		for _, i := range c.Manifest.Indices() {
			if c.Manifest.Verify(shares.Share{Index: i, Value: b}) == nil {
				s.Index = i
				break
			}
		}
		if s.Index == 0 {
			shares.Zero(b)
			return fmt.Errorf("%s: %w %d (the holders' manifest): it is of an older generation (from before a rekey), of another Vault, or has a typo",
				name, ErrWrongGeneration, c.Manifest.Generation)
		}
	} else {
		s.Index = uint8(len(c.got) + 1)
	}
	c.got, c.names = append(c.got, s), append(c.names, name)
	return nil
}

// Done reports whether a threshold of valid shares is in hand.
func (c *Collector) Done() bool { return len(c.got) >= c.Threshold }

// Count is how many valid shares are in hand.
func (c *Collector) Count() int { return len(c.got) }

// Shares returns the validated shares; the Collector still owns them.
func (c *Collector) Shares() []shares.Share { return c.got }

// Zero overwrites every collected share.
func (c *Collector) Zero() { shares.ZeroShares(c.got); c.got, c.names = nil, nil }

// ReadLines adds one share per non-blank line of r (lines starting with #
// are comments) until the threshold is reached. The first bad line stops
// it: nothing is submitted from input that holds a mistake.
func (c *Collector) ReadLines(source string, r io.Reader) error {
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan() && !c.Done(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := c.Add(fmt.Sprintf("%s line %d", source, n), line); err != nil {
			return fmt.Errorf("%w; nothing was submitted", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("failed to read %s: %w", source, err)
	}
	return nil
}

// ReadFile reads shares from a file, one per line.
func (c *Collector) ReadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failed to open share file: %w", err)
	}
	defer f.Close()
	return c.ReadLines("file "+path, f)
}

// Prompt reads shares from a terminal without echo until the threshold is
// reached. A bad entry is named and asked for again; end of input (Ctrl-D)
// stops with nothing submitted.
func (c *Collector) Prompt(tty *os.File, out io.Writer) error {
	for tries := 1; !c.Done(); tries++ {
		name := fmt.Sprintf("share %d", c.Count()+1)
		fmt.Fprintf(out, "%s of %d (input is hidden): ", name, c.Threshold)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(out)
		if err != nil {
			return fmt.Errorf("stopped reading shares at %s: %w; nothing was submitted", name, err)
		}
		if len(b) == 0 && tries > 3*c.Threshold {
			return fmt.Errorf("stopped reading shares at %s: too many empty lines; nothing was submitted", name)
		}
		err = c.Add(name, string(b))
		shares.Zero(b)
		if err != nil {
			fmt.Fprintf(out, "rejected: %v\n", err)
			continue
		}
		fmt.Fprintf(out, "%s ok (%d of %d)\n", name, c.Count(), c.Threshold)
	}
	return nil
}
