package shares

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// The key derivation functions a sealed file can name.
const (
	kdfRaw      = 1 // the seal key is used as is (key file, systemd credential)
	kdfArgon2id = 2 // the seal key is derived from a passphrase
)

// Argon2Params are the argon2id cost parameters, stored in every file sealed
// under a passphrase so that it opens even after the defaults change.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is the passphrase cost: 64 MiB of memory, 2 passes, 2 lanes.
// It costs a few hundred milliseconds on a 2-core machine (figures in
// BENCHMARKS.md): slow enough to make guessing a passphrase from a stolen
// disk expensive, fast enough for a holder start, which derives once per
// file. It is RFC 9106's second recommended option (64 MiB) with one pass
// fewer and 2 lanes for 2 cores, to stay under 1 s on a busy host.
var DefaultArgon2 = Argon2Params{Time: 2, MemoryKiB: 64 * 1024, Threads: 2}

// Bounds accepted when opening a file, so that a forged header cannot make
// Open burn unbounded memory or time.
const (
	maxArgonTime   = 64
	maxArgonMemKiB = 4 * 1024 * 1024
	maxArgonLanes  = 64
)

func (p Argon2Params) validate() error {
	if p.Time < 1 || p.Time > maxArgonTime || p.Threads < 1 || p.Threads > maxArgonLanes ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgonMemKiB {
		return fmt.Errorf("argon2id parameters out of range (time %d, memory %d KiB, threads %d)", p.Time, p.MemoryKiB, p.Threads)
	}
	return nil
}

// SealKey is where a holder's file key comes from. Get one from
// LoadKeyFile, LoadCredential, KeyFromBytes or KeyFromPassphrase.
type SealKey interface {
	// kdf is the KDF to record in new files, with its parameters.
	kdf() (id byte, p Argon2Params)
	// derive returns the 32-byte file key for a header's KDF fields.
	// The result is owned by the SealKey; do not zero it.
	derive(id byte, p Argon2Params, salt []byte) ([]byte, error)
	// subkey derives a 32-byte key for another purpose than sealing files.
	subkey(purpose string) ([]byte, error)
	// Destroy zeroes the key material.
	Destroy()
}

// subkeyArgon2 are the argon2id parameters of Subkey for a passphrase. They
// are fixed forever, unlike DefaultArgon2: a subkey must not change when the
// defaults for new files do.
var subkeyArgon2 = Argon2Params{Time: 2, MemoryKiB: 64 * 1024, Threads: 2}

// Subkey derives a 32-byte key for purpose (for example "audit-chain") from
// the seal key, so that other files of the holder can be authenticated with
// it. Different purposes give independent keys; the seal key cannot be
// recovered from a subkey. The caller owns the result: zero it when done.
func Subkey(k SealKey, purpose string) ([]byte, error) {
	if purpose == "" {
		return nil, errors.New("subkey: empty purpose")
	}
	return k.subkey(purpose)
}

// subkeyFrom is HMAC-SHA256(base, label || purpose).
func subkeyFrom(base []byte, purpose string) []byte {
	m := hmac.New(sha256.New, base)
	m.Write([]byte("keyshare/subkey/v1\x00"))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// ErrKDFMismatch is returned when a file was sealed with another kind of
// seal key (a passphrase file opened with a key file, or the reverse).
var ErrKDFMismatch = errors.New("file was sealed with another kind of seal key")

type rawKey struct{ key []byte }

// KeyFromBytes uses a 32-byte key as is. It copies b.
func KeyFromBytes(b []byte) (SealKey, error) {
	if len(b) != KeyLen {
		return nil, fmt.Errorf("seal key has %d bytes, want %d", len(b), KeyLen)
	}
	k := &rawKey{key: append([]byte(nil), b...)}
	_ = Mlock(k.key) // best effort: the daemon reports mlock trouble once at start
	return k, nil
}

// LoadKeyFile reads a seal key file: 32 raw bytes, or 64 hex characters with
// an optional trailing newline (what `holder keygen` writes). The file must
// not be readable by group or others.
func LoadKeyFile(path string) (SealKey, error) {
	b, err := ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	defer Zero(b)
	if len(b) == KeyLen {
		return KeyFromBytes(b)
	}
	// Work on the bytes: a Go string copy of the key could not be zeroed.
	txt := bytes.TrimRight(b, "\r\n")
	if len(txt) == 2*KeyLen {
		raw := make([]byte, KeyLen)
		defer Zero(raw)
		if _, err := hex.Decode(raw, txt); err == nil {
			return KeyFromBytes(raw)
		}
	}
	return nil, fmt.Errorf("seal key file %s: want 32 raw bytes or 64 hex characters, got %d bytes: make one with 'holder keygen'", path, len(b))
}

// LoadPassphraseFile reads a passphrase file (one line; a trailing newline
// is dropped) and derives keys from it with params. The passphrase never
// becomes a Go string, and the bytes read are zeroed.
func LoadPassphraseFile(path string, params Argon2Params) (SealKey, error) {
	b, err := ReadSecretFile(path)
	if err != nil {
		return nil, err
	}
	defer Zero(b)
	k, err := KeyFromPassphrase(bytes.TrimRight(b, "\r\n"), params)
	if err != nil {
		return nil, fmt.Errorf("passphrase file %s: %w", path, err)
	}
	return k, nil
}

// LoadCredential reads a seal key passed by systemd (LoadCredential= or
// LoadCredentialEncrypted=) from $CREDENTIALS_DIRECTORY/name.
func LoadCredential(name string) (SealKey, error) {
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return nil, fmt.Errorf("systemd credential %q: $CREDENTIALS_DIRECTORY is not set: add LoadCredential=%s:/path/to/key to the unit", name, name)
	}
	if name == "" || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("systemd credential name %q: want a plain file name", name)
	}
	return LoadKeyFile(filepath.Join(dir, name))
}

func (k *rawKey) kdf() (byte, Argon2Params) { return kdfRaw, Argon2Params{} }

func (k *rawKey) derive(id byte, _ Argon2Params, _ []byte) ([]byte, error) {
	if id != kdfRaw {
		return nil, fmt.Errorf("%w: file wants a passphrase", ErrKDFMismatch)
	}
	return k.key, nil
}

func (k *rawKey) subkey(purpose string) ([]byte, error) { return subkeyFrom(k.key, purpose), nil }

func (k *rawKey) Destroy() { Zero(k.key); Munlock(k.key) }

// passphraseKey derives file keys with argon2id and caches them per salt, so
// a holder pays the cost once per file rather than once per release.
type passphraseKey struct {
	pass   []byte
	params Argon2Params
	mu     sync.Mutex
	cache  map[[32]byte][]byte
}

// KeyFromPassphrase derives keys from a passphrase with argon2id. New files
// record params; existing files are opened with the parameters they record.
// It copies pass.
func KeyFromPassphrase(pass []byte, params Argon2Params) (SealKey, error) {
	if len(pass) < 12 {
		return nil, fmt.Errorf("passphrase has %d characters, want at least 12", len(pass))
	}
	if err := params.validate(); err != nil {
		return nil, err
	}
	return &passphraseKey{pass: append([]byte(nil), pass...), params: params, cache: map[[32]byte][]byte{}}, nil
}

func (k *passphraseKey) kdf() (byte, Argon2Params) { return kdfArgon2id, k.params }

func (k *passphraseKey) derive(id byte, p Argon2Params, salt []byte) ([]byte, error) {
	if id != kdfArgon2id {
		return nil, fmt.Errorf("%w: file wants a key file", ErrKDFMismatch)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	// The cache key covers salt and parameters.
	h := sha256.New()
	h.Write(salt)
	fmt.Fprintf(h, "|%d|%d|%d", p.Time, p.MemoryKiB, p.Threads)
	var ck [32]byte
	h.Sum(ck[:0])
	k.mu.Lock()
	defer k.mu.Unlock()
	if key, ok := k.cache[ck]; ok {
		return key, nil
	}
	key := argon2.IDKey(k.pass, salt, p.Time, p.MemoryKiB, p.Threads, KeyLen)
	_ = Mlock(key)
	k.cache[ck] = key
	return key, nil
}

func (k *passphraseKey) subkey(purpose string) ([]byte, error) {
	salt := sha256.Sum256([]byte("keyshare/subkey-salt/v1\x00" + purpose))
	base, err := k.derive(kdfArgon2id, subkeyArgon2, salt[:16])
	if err != nil {
		return nil, err
	}
	return subkeyFrom(base, purpose), nil
}

func (k *passphraseKey) Destroy() {
	k.mu.Lock()
	defer k.mu.Unlock()
	Zero(k.pass)
	for ck, key := range k.cache {
		Zero(key)
		Munlock(key)
		delete(k.cache, ck)
	}
}

// keyCheck commits to the file key, so that Open can tell a wrong key from a
// tampered file.
func keyCheck(key, salt []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("keyshare/key-check/v1\x00"))
	m.Write(salt)
	return m.Sum(nil)[:keyCheckLen]
}

// NewKeyFileBytes returns a fresh random seal key in the hex text form that
// LoadKeyFile reads.
func NewKeyFileBytes() []byte {
	raw := make([]byte, KeyLen)
	_, _ = rand.Read(raw)
	defer Zero(raw)
	out := make([]byte, 2*KeyLen+1)
	hex.Encode(out, raw)
	out[2*KeyLen] = '\n'
	return out
}
