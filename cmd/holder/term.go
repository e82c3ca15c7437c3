package main

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// readHidden prompts for up to n '<index> <share>' lines without echo, and
// stops at an empty line.
func readHidden(f *os.File, prompt io.Writer, n int) (io.Reader, error) {
	var buf bytes.Buffer
	fmt.Fprintf(prompt, "Type each share as '<index> <share>' (input is hidden); an empty line ends.\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(prompt, "share %d: ", i)
		line, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return nil, fmt.Errorf("failed to read from the terminal: %w", err)
		}
		if len(bytes.TrimSpace(line)) == 0 { // no string copy of a share
			break
		}
		buf.Write(line)
		buf.WriteByte('\n')
		clear(line)
	}
	return &buf, nil
}
