package shares

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

type header struct {
	kdf      byte
	params   Argon2Params
	salt     []byte
	nonce    []byte
	keyCheck []byte
	bind     binding
	aadLen   int
}

// parseHeader reads and checks the public part of a sealed file.
func parseHeader(data []byte) (*header, error) {
	n := min(len(data), len(magic))
	if string(data[:n]) != magic[:n] {
		return nil, ErrNotSealedFile
	}
	if len(data) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrTruncated, len(data), headerLen)
	}
	if v := data[len(magic)]; v != formatVersion {
		return nil, fmt.Errorf("%w: version %d, this build reads %d", ErrUnsupportedVersion, v, formatVersion)
	}
	h := &header{}
	off := len(magic) + 1
	h.kdf = data[off]
	off++
	h.params.Time = binary.BigEndian.Uint32(data[off:])
	h.params.MemoryKiB = binary.BigEndian.Uint32(data[off+4:])
	h.params.Threads = data[off+8]
	off += 9
	h.salt = data[off : off+saltLen]
	off += saltLen
	h.nonce = data[off : off+chacha20poly1305.NonceSizeX]
	off += chacha20poly1305.NonceSizeX
	h.keyCheck = data[off : off+keyCheckLen]
	off += keyCheckLen
	bindLen := int(binary.BigEndian.Uint32(data[off:]))
	off += 4
	switch h.kdf {
	case kdfRaw:
		if h.params != (Argon2Params{}) {
			return nil, fmt.Errorf("%w: raw-key file with argon2id parameters", ErrMalformed)
		}
	case kdfArgon2id:
		if err := h.params.validate(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	default:
		return nil, fmt.Errorf("%w: unknown key derivation %d", ErrMalformed, h.kdf)
	}
	if bindLen > maxBindingLen {
		return nil, fmt.Errorf("%w: binding of %d bytes, limit %d", ErrMalformed, bindLen, maxBindingLen)
	}
	if len(data) < off+bindLen {
		return nil, fmt.Errorf("%w: binding needs %d bytes, %d left", ErrTruncated, bindLen, len(data)-off)
	}
	dec := json.NewDecoder(bytes.NewReader(data[off : off+bindLen]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h.bind); err != nil {
		return nil, fmt.Errorf("%w: binding: %w", ErrMalformed, err)
	}
	if len(h.bind.Indices) == 0 || len(h.bind.Indices) > 255 {
		return nil, fmt.Errorf("%w: binding lists %d shares", ErrMalformed, len(h.bind.Indices))
	}
	h.aadLen = off + bindLen
	return h, nil
}

// Inspect returns the public binding of a sealed file (holder, generation,
// indices, manifest) without a key. The values are authenticated only by
// Open; use them for display.
func Inspect(data []byte) (holder string, generation uint64, indices []uint8, m Manifest, err error) {
	h, err := parseHeader(data)
	if err != nil {
		return "", 0, nil, Manifest{}, err
	}
	return h.bind.Holder, h.bind.Generation, h.bind.Indices, h.bind.Manifest, nil
}
