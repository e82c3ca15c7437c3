package kmsplugin

import (
	"fmt"
	"time"
)

// KeyID is the KMS v2 key_id of one version of a transit key:
//
//	vault-transit:<mount>/<key>:v<version>:<creation time, unix seconds>
//
// It changes exactly when the key is rotated (a new version) and is never
// reused: a key deleted and created again starts at version 1 with a later
// creation time. The apiserver treats it as opaque (at most 1 KiB; mount and
// key names are at most 128 bytes each here). Every apiserver of a cluster
// derives the same key_id from the same Vault data, so they agree without
// talking to each other.
func KeyID(mount, key string, version int, created time.Time) string {
	return fmt.Sprintf("vault-transit:%s/%s:v%d:%d", mount, key, version, created.Unix())
}

// associatedData binds every ciphertext the plugin makes to its use: a seed
// of the Kubernetes KMS v2 envelope. Transit refuses to decrypt it without
// the same associated data, so a ciphertext made by another user of the same
// transit key cannot be passed off as a Kubernetes seed, nor the other way
// round. It is a constant so that renaming the provider or the key_id format
// never makes stored data unreadable.
var associatedData = []byte("keyshare kms v2 seed")
