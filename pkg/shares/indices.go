package shares

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Indices is a list of share indices. It encodes to JSON as an array of
// numbers ([1,2]), not as base64 the way encoding/json writes a []uint8,
// so that logs, the audit log and status output read naturally.
type Indices []uint8

// MarshalJSON writes [1,2,...].
func (x Indices) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, v := range x {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(v), 10)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads an array of numbers 0 to 255.
func (x *Indices) UnmarshalJSON(b []byte) error {
	var ns []int
	if err := json.Unmarshal(b, &ns); err != nil {
		return fmt.Errorf("share indices: %w", err)
	}
	out := make(Indices, len(ns))
	for i, n := range ns {
		if n < 0 || n > 255 {
			return fmt.Errorf("share index %d out of range", n)
		}
		out[i] = uint8(n)
	}
	*x = out
	return nil
}
