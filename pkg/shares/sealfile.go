package shares

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// The sealed file format, version 1. All integers are big-endian.
//
//	magic     6  "KSHARE"
//	version   1  1
//	kdf       1  1 = raw key, 2 = argon2id
//	time      4  argon2id time cost (0 for raw)
//	memory    4  argon2id memory in KiB (0 for raw)
//	threads   1  argon2id lanes (0 for raw)
//	salt     16  random per file
//	nonce    24  random per file (XChaCha20-Poly1305)
//	keycheck 16  HMAC-SHA256(file key, domain || salt), truncated
//	bindlen   4  length of the binding
//	binding   n  JSON {holder, generation, indices, manifest}: public, authenticated
//	sealed       XChaCha20-Poly1305(share values in binding order)
//
// The AAD is everything before the ciphertext: the header and the binding.
// So the holder ID, generation and indices cannot be changed, and a file
// moved to another holder or generation is refused before decryption.
const (
	magic         = "KSHARE"
	formatVersion = 1
	saltLen       = 16
	keyCheckLen   = 16
	headerLen     = 6 + 1 + 1 + 4 + 4 + 1 + saltLen + chacha20poly1305.NonceSizeX + keyCheckLen + 4
	maxBindingLen = 64 << 10
)

// Errors returned by Open. Each one means no plaintext was returned.
var (
	// ErrNotSealedFile is returned when the magic bytes are wrong.
	ErrNotSealedFile = errors.New("not a keyshare sealed file")
	// ErrUnsupportedVersion is returned for a format version this build
	// does not know; upgrade keyshare.
	ErrUnsupportedVersion = errors.New("unsupported sealed file version")
	// ErrTruncated is returned when the file is shorter than its header or
	// binding say, or its ciphertext has the wrong length.
	ErrTruncated = errors.New("sealed file is truncated")
	// ErrMalformed is returned when the header or binding cannot be parsed.
	ErrMalformed = errors.New("sealed file is malformed")
	// ErrWrongHolder is returned when the file belongs to another holder.
	ErrWrongHolder = errors.New("sealed file belongs to another holder")
	// ErrWrongGeneration is returned when the file holds another generation.
	ErrWrongGeneration = errors.New("sealed file holds another generation")
	// ErrWrongKey is returned when the seal key does not match the file.
	// A file whose salt or KDF parameters were altered shows the same way,
	// since they feed the key check.
	ErrWrongKey = errors.New("wrong seal key")
	// ErrTampered is returned when authentication fails: the file was
	// modified after it was sealed.
	ErrTampered = errors.New("sealed file failed authentication (tampered or corrupt)")
)

// Bundle is what one sealed file holds: one holder's shares of one
// generation, with the generation's full manifest.
type Bundle struct {
	HolderID   string
	Generation uint64
	Shares     []Share
	Manifest   Manifest
}

// Destroy zeroes the share bytes.
func (b *Bundle) Destroy() { ZeroShares(b.Shares) }

// Indices returns the bundle's share indices in order.
func (b *Bundle) Indices() []uint8 {
	out := make([]uint8, len(b.Shares))
	for i, s := range b.Shares {
		out[i] = s.Index
	}
	return out
}

type binding struct {
	Holder     string   `json:"holder"`
	Generation uint64   `json:"generation"`
	Indices    []uint8  `json:"indices"`
	Manifest   Manifest `json:"manifest"`
}

// Validate checks that the bundle is complete and self-consistent: its
// shares are distinct and each matches the manifest of its generation.
func (b *Bundle) Validate() error {
	if b.HolderID == "" {
		return errors.New("bundle has no holder ID")
	}
	if len(b.Shares) == 0 {
		return fmt.Errorf("holder %s generation %d: no shares", b.HolderID, b.Generation)
	}
	if err := b.Manifest.Validate(); err != nil {
		return err
	}
	if b.Manifest.Generation != b.Generation {
		return fmt.Errorf("holder %s: manifest is for generation %d, shares for %d", b.HolderID, b.Manifest.Generation, b.Generation)
	}
	if err := CheckDistinct(b.Shares); err != nil {
		return fmt.Errorf("holder %s generation %d: %w", b.HolderID, b.Generation, err)
	}
	for _, s := range b.Shares {
		if err := b.Manifest.Verify(s); err != nil {
			return fmt.Errorf("holder %s: %w", b.HolderID, err)
		}
	}
	return nil
}

// Seal encrypts a validated bundle under key.
func Seal(key SealKey, b *Bundle) ([]byte, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	bind, err := json.Marshal(binding{Holder: b.HolderID, Generation: b.Generation, Indices: b.Indices(), Manifest: b.Manifest})
	if err != nil {
		return nil, fmt.Errorf("failed to encode binding: %w", err)
	}
	if len(bind) > maxBindingLen {
		return nil, fmt.Errorf("binding is %d bytes, over the %d limit", len(bind), maxBindingLen)
	}
	kdf, p := key.kdf()
	salt := make([]byte, saltLen)
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(nonce)
	fk, err := key.derive(kdf, p, salt)
	if err != nil {
		return nil, err
	}
	var hdr bytes.Buffer
	hdr.WriteString(magic)
	hdr.WriteByte(formatVersion)
	hdr.WriteByte(kdf)
	_ = binary.Write(&hdr, binary.BigEndian, p.Time)
	_ = binary.Write(&hdr, binary.BigEndian, p.MemoryKiB)
	hdr.WriteByte(p.Threads)
	hdr.Write(salt)
	hdr.Write(nonce)
	hdr.Write(keyCheck(fk, salt))
	_ = binary.Write(&hdr, binary.BigEndian, uint32(len(bind)))
	hdr.Write(bind)
	aad := hdr.Bytes()

	plain := make([]byte, 0, len(b.Shares)*ShareLen)
	for _, s := range b.Shares {
		plain = append(plain, s.Value...)
	}
	defer Zero(plain)
	aead, err := chacha20poly1305.NewX(fk)
	if err != nil {
		return nil, fmt.Errorf("failed to set up XChaCha20-Poly1305: %w", err)
	}
	return aead.Seal(append([]byte(nil), aad...), nonce, plain, aad), nil
}

// Expect is what the opener already knows about a file, from its own
// configuration and store state rather than from the file.
type Expect struct {
	HolderID   string
	Generation uint64
}

// Open authenticates and decrypts a sealed file. It returns no plaintext on
// any error. The caller must Destroy the bundle when done.
func Open(key SealKey, data []byte, want Expect) (*Bundle, error) {
	h, err := parseHeader(data)
	if err != nil {
		return nil, err
	}
	if h.bind.Holder != want.HolderID {
		return nil, fmt.Errorf("%w: file is for holder %q, this is %q", ErrWrongHolder, h.bind.Holder, want.HolderID)
	}
	if h.bind.Generation != want.Generation {
		return nil, fmt.Errorf("%w: file holds generation %d, expected %d", ErrWrongGeneration, h.bind.Generation, want.Generation)
	}
	fk, err := key.derive(h.kdf, h.params, h.salt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(keyCheck(fk, h.salt), h.keyCheck) {
		return nil, fmt.Errorf("%w: the seal key does not open this file; check the key file or passphrase", ErrWrongKey)
	}
	aead, err := chacha20poly1305.NewX(fk)
	if err != nil {
		return nil, fmt.Errorf("failed to set up XChaCha20-Poly1305: %w", err)
	}
	ct := data[h.aadLen:]
	if len(ct) != len(h.bind.Indices)*ShareLen+aead.Overhead() {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, want %d", ErrTruncated, len(ct), len(h.bind.Indices)*ShareLen+aead.Overhead())
	}
	plain, err := aead.Open(nil, h.nonce, ct, data[:h.aadLen])
	if err != nil {
		return nil, ErrTampered
	}
	b := &Bundle{HolderID: h.bind.Holder, Generation: h.bind.Generation, Manifest: h.bind.Manifest}
	// The shares live on locked pages of their own (see LockedBytes).
	slab := LockedBytes(len(h.bind.Indices) * ShareLen)
	for i, idx := range h.bind.Indices {
		v := slab[i*ShareLen : (i+1)*ShareLen : (i+1)*ShareLen]
		copy(v, plain[i*ShareLen:(i+1)*ShareLen])
		b.Shares = append(b.Shares, Share{Index: idx, Value: v})
	}
	Zero(plain)
	if err := b.Validate(); err != nil {
		b.Destroy()
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return b, nil
}
