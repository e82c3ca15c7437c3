package kubeharness

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"
	kmstypes "k8s.io/apiserver/pkg/storage/value/encrypt/envelope/kmsv2/v2"
)

// Stored is a Secret's raw etcd value as the KMS v2 provider wrote it.
type Stored struct {
	// KeyID is the key_id the plugin reported for the seed's encryption.
	KeyID string
	// EncryptedDEKSource is the plugin's ciphertext of the seed.
	EncryptedDEKSource []byte
	// EncryptedData is the Secret, encrypted with a DEK derived from the
	// seed.
	EncryptedData []byte
	// Annotations are the plugin's (stored in the clear).
	Annotations map[string][]byte
}

// ParseStored reads a raw etcd value: StoredPrefix, then an EncryptedObject
// protobuf. It fails if the value has another prefix.
func ParseStored(raw []byte) (*Stored, error) {
	if !bytes.HasPrefix(raw, []byte(StoredPrefix)) {
		n := min(len(raw), len(StoredPrefix))
		return nil, fmt.Errorf("stored value starts with %q, want %q", raw[:n], StoredPrefix)
	}
	var o kmstypes.EncryptedObject
	if err := proto.Unmarshal(raw[len(StoredPrefix):], &o); err != nil {
		return nil, fmt.Errorf("stored value is no EncryptedObject: %w", err)
	}
	return &Stored{KeyID: o.KeyID, EncryptedDEKSource: o.EncryptedDEKSource, EncryptedData: o.EncryptedData, Annotations: o.Annotations}, nil
}
