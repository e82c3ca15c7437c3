package topology

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/keyshare/keyshare/pkg/shares"
)

// KnownShares remembers every share a run has seen (from the paper
// backup), by generation, for the leak check. It is safe for concurrent
// use and never prints a share.
type KnownShares struct {
	mu  sync.Mutex
	gen map[uint64]map[uint8][]byte
}

// Add records shares of generation gen.
func (k *KnownShares) Add(gen uint64, ss ...shares.Share) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gen == nil {
		k.gen = map[uint64]map[uint8][]byte{}
	}
	if k.gen[gen] == nil {
		k.gen[gen] = map[uint8][]byte{}
	}
	for _, s := range ss {
		k.gen[gen][s.Index] = bytes.Clone(s.Value)
	}
}

// Generation returns the shares of gen, sorted by index (copies).
func (k *KnownShares) Generation(gen uint64) []shares.Share {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []shares.Share
	for i, v := range k.gen[gen] {
		out = append(out, shares.Share{Index: i, Value: bytes.Clone(v)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// Count is how many shares are known, over all generations.
func (k *KnownShares) Count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, g := range k.gen {
		n += len(g)
	}
	return n
}

// Leak is a share found where it must never be. It names the share by
// generation and index, never by value.
type Leak struct {
	File       string
	Generation uint64
	Index      uint8
	Encoding   string
}

func (l Leak) String() string {
	return fmt.Sprintf("%s holds share %d of generation %d (%s)", l.File, l.Index, l.Generation, l.Encoding)
}

// encodings are every way a share could be written out.
var encodings = []struct {
	name string
	enc  func([]byte) string
}{
	{"hex", hex.EncodeToString},
	{"HEX", func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) }},
	{"base64", base64.StdEncoding.EncodeToString},
	{"base64 unpadded", base64.RawStdEncoding.EncodeToString},
	{"base64url", base64.URLEncoding.EncodeToString},
	{"base64url unpadded", base64.RawURLEncoding.EncodeToString},
}

// Scan reads every regular file under the roots (following symlinked
// files) and reports each known share found in any encoding. It returns
// how many files it read.
func (k *KnownShares) Scan(roots ...string) ([]Leak, int, error) {
	var needles []needle[Leak]
	k.mu.Lock()
	for g, byIdx := range k.gen {
		for i, v := range byIdx {
			for _, e := range encodings {
				needles = append(needles, needle[Leak]{e.enc(v), Leak{Generation: g, Index: i, Encoding: e.name}})
			}
		}
	}
	k.mu.Unlock()
	return scanFiles(roots, needles, func(l Leak, file string) Leak { l.File = file; return l })
}

// needle is a text to look for in files and the leak to report, without
// its File, where it is found.
type needle[L any] struct {
	text string
	leak L
}

// scanFiles reads every regular file under roots (following symlinked
// files) and returns each needle found, as at(leak, file), and how many
// files it read.
func scanFiles[L any](roots []string, needles []needle[L], at func(leak L, file string) L) ([]L, int, error) {
	var leaks []L
	files := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			st, err := os.Stat(path) // follows a symlinked log
			if err != nil || !st.Mode().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("failed to read %s for the leak check: %w", path, err)
			}
			files++
			for _, n := range needles {
				if bytes.Contains(b, []byte(n.text)) {
					leaks = append(leaks, at(n.leak, path))
				}
			}
			return nil
		})
		if err != nil {
			return leaks, files, err
		}
	}
	return leaks, files, nil
}
