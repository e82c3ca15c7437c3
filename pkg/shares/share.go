package shares

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeyLen is the length of a Vault barrier unseal key, and ShareLen the length
// of one of its Shamir shares: the key's length plus the x-coordinate tag.
const (
	KeyLen   = 32
	ShareLen = KeyLen + 1
)

// Errors returned by ParseShare and ParseShares. Each is wrapped with the
// name of the input that was wrong.
var (
	// ErrEmptyShare is returned for an empty or blank input.
	ErrEmptyShare = errors.New("share is empty")
	// ErrShareEncoding is returned when the input is neither hex nor base64.
	ErrShareEncoding = errors.New("share is neither hex nor base64")
	// ErrShareLength is returned when the decoded share has the wrong size.
	ErrShareLength = errors.New("share has the wrong length")
	// ErrDuplicateShare is returned when two inputs hold the same share.
	ErrDuplicateShare = errors.New("duplicate share")
)

// Share is one unseal-key share. Index is its 1-based position in the dealt
// plan (the order Vault printed the keys in). Value holds the raw share bytes
// with Vault's x-coordinate tag as the last byte.
//
// A Share never prints its bytes: String, GoString, Format and LogValue are
// redacted. Use Hex or Base64 explicitly, and only where an operator asked.
type Share struct {
	Index uint8
	Value []byte
}

// Hex returns the share in the hex form Vault accepts.
func (s Share) Hex() string { return hex.EncodeToString(s.Value) }

// Base64 returns the share in the base64 form Vault prints.
func (s Share) Base64() string { return base64.StdEncoding.EncodeToString(s.Value) }

// String is redacted: it never shows the share bytes.
func (s Share) String() string { return fmt.Sprintf("share#%d(redacted)", s.Index) }

// GoString is redacted, so %#v does not leak the share either.
func (s Share) GoString() string { return s.String() }

// Format makes every fmt verb print the redacted form.
func (s Share) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

// LogValue keeps share bytes out of slog output.
func (s Share) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("index", int(s.Index)), slog.String("value", "redacted"))
}

// MarshalJSON is redacted, so a share inside a logged or encoded struct
// never shows its bytes. Shares travel only in the sealed file format and in
// protobuf messages, never as JSON.
func (s Share) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf(`{"index":%d,"value":"redacted"}`, s.Index)), nil
}

// Clone returns a deep copy. The caller must Zero it when done.
func (s Share) Clone() Share {
	return Share{Index: s.Index, Value: append([]byte(nil), s.Value...)}
}

// ParseShare decodes one share the way Vault's sys/unseal does: hex first,
// then standard base64. name says where the input came from ("key 2",
// "file /x") and is used in errors. The result must be ShareLen bytes.
func ParseShare(name, input string) ([]byte, error) {
	in := strings.TrimSpace(input)
	if in == "" {
		return nil, fmt.Errorf("%s: %w: paste one of the keys Vault printed at init (hex or base64)", name, ErrEmptyShare)
	}
	b, err := hex.DecodeString(in)
	if err != nil {
		var berr error
		b, berr = base64.StdEncoding.DecodeString(in)
		if berr != nil {
			return nil, fmt.Errorf("%s: %w (%s): check for a typo or a truncated paste",
				name, ErrShareEncoding, describeBadChar(in))
		}
	}
	if len(b) != ShareLen {
		Zero(b)
		return nil, fmt.Errorf("%s: %w: got %d bytes, want %d (66 hex or 44 base64 characters); is it a root token or a key from another Vault?",
			name, ErrShareLength, len(b), ShareLen)
	}
	return b, nil
}

// describeBadChar points at the first character that is valid in neither
// encoding, without echoing the input (it may be a share with a typo).
func describeBadChar(in string) string {
	for i, r := range in {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) &&
			!strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", r) {
			return fmt.Sprintf("invalid character at position %d", i+1)
		}
	}
	if len(in)%2 == 1 && len(in)%4 != 0 {
		return fmt.Sprintf("odd length %d for hex, and not a multiple of 4 for base64", len(in))
	}
	return fmt.Sprintf("length %d fits neither encoding", len(in))
}

// ParseShares parses several inputs, numbering them 1.. in input order, and
// rejects duplicates by naming both inputs. On error nothing is returned and
// whatever was decoded is zeroed.
func ParseShares(inputs []string) ([]Share, error) {
	out := make([]Share, 0, len(inputs))
	fail := func(err error) ([]Share, error) {
		ZeroShares(out)
		return nil, err
	}
	for i, in := range inputs {
		b, err := ParseShare(fmt.Sprintf("share %d", i+1), in)
		if err != nil {
			return fail(err)
		}
		for _, prev := range out {
			if string(prev.Value) == string(b) {
				Zero(b)
				return fail(fmt.Errorf("share %d: %w: same as share %d; enter a different key", i+1, ErrDuplicateShare, prev.Index))
			}
		}
		out = append(out, Share{Index: uint8(i + 1), Value: b})
	}
	return out, nil
}

// CheckDistinct reports an error if two shares have the same index, the same
// x-coordinate tag, or the same bytes, or if any has the wrong length.
func CheckDistinct(ss []Share) error {
	for i, a := range ss {
		if len(a.Value) != ShareLen {
			return fmt.Errorf("share index %d: %w: %d bytes, want %d", a.Index, ErrShareLength, len(a.Value), ShareLen)
		}
		for _, b := range ss[:i] {
			switch {
			case a.Index == b.Index:
				return fmt.Errorf("share index %d: %w: index given twice", a.Index, ErrDuplicateShare)
			case a.Value[ShareLen-1] == b.Value[ShareLen-1]:
				return fmt.Errorf("share index %d and %d: %w: same x-coordinate", b.Index, a.Index, ErrDuplicateShare)
			}
		}
	}
	return nil
}
