package lifecycle

import (
	"context"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// Input says where break-glass shares come from.
type Input struct {
	// Files hold shares, one per line; "-" is Stdin.
	Files []string
	// Stdin is read when no file is given: typed without echo if it is a
	// terminal (or Prompt is set and it is one), else one share per line.
	Stdin  io.Reader
	Prompt bool
	// Out receives prompts and the verdict on each share.
	Out io.Writer
}

// Gather collects a threshold of validated shares. It checks them against
// the manifest a majority of holders agree on when the holders answer;
// otherwise for format and duplicates only, with the threshold Vault
// reports. On error nothing is returned (and nothing was submitted).
func Gather(ctx context.Context, hs []HolderRef, nodes []Node, in Input) (*Collector, error) {
	col := &Collector{}
	if in.Out == nil {
		in.Out = io.Discard
	}
	a := Agree(ctx, hs)
	if a.Manifest.Generation != 0 {
		col.Manifest, col.Threshold = a.Manifest, a.Manifest.Threshold
		fmt.Fprintf(in.Out, "checking shares against generation %d (threshold %d), the manifest of %d holders\n",
			a.Manifest.Generation, a.Manifest.Threshold, len(a.Agreeing))
	} else {
		for _, n := range nodes {
			if st, err := n.Vault.SealStatus(ctx); err == nil && st.T > 0 {
				col.Threshold = st.T
				break
			}
		}
		if col.Threshold == 0 {
			return nil, fmt.Errorf("neither the holders (%s) nor any Vault node says how many shares are needed: start one of them and rerun", a.Unreachable())
		}
		fmt.Fprintf(in.Out, "no manifest reachable from the holders: shares are checked for format and duplicates only (threshold %d)\n", col.Threshold)
	}
	fail := func(err error) (*Collector, error) { col.Zero(); return nil, err }
	for _, f := range in.Files {
		var err error
		if f == "-" {
			err = col.ReadLines("stdin", in.Stdin)
		} else {
			err = col.ReadFile(f)
		}
		if err != nil {
			return fail(err)
		}
	}
	if !col.Done() && (in.Prompt || len(in.Files) == 0) {
		var err error
		if f, ok := in.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			err = col.Prompt(f, in.Out)
		} else {
			err = col.ReadLines("stdin", in.Stdin)
		}
		if err != nil {
			return fail(err)
		}
	}
	if !col.Done() {
		return fail(fmt.Errorf("%d of %d valid shares given: nothing was submitted; give %d more", col.Count(), col.Threshold, col.Threshold-col.Count()))
	}
	return col, nil
}
