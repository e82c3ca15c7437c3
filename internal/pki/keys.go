package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// KeyType is the algorithm of a new key.
type KeyType string

// The key types CreateCA and Issue make.
const (
	// KeyECDSAP256 is ECDSA on NIST P-256: understood by every TLS stack,
	// Vault's included. The default.
	KeyECDSAP256 KeyType = "ecdsa"
	// KeyEd25519 is Ed25519: smaller and faster, fine between keyshare
	// daemons (Go, TLS 1.3), not understood by every other client.
	KeyEd25519 KeyType = "ed25519"
)

// ParseKeyType accepts "ecdsa" (or "ecdsa-p256", "p256"), "ed25519", or ""
// for the default.
func ParseKeyType(s string) (KeyType, error) {
	switch s {
	case "", "ecdsa", "ecdsa-p256", "p256":
		return KeyECDSAP256, nil
	case "ed25519":
		return KeyEd25519, nil
	}
	return "", invalidf("unknown key type %q; use ecdsa (P-256) or ed25519", s)
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key type %q; use ecdsa (P-256) or ed25519", t)
}

// marshalKey encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func marshalKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("failed to encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseKey reads a PKCS#8, SEC 1 (EC) or PKCS#1 (RSA) PEM private key, so
// that a CA made with openssl or step works too.
func parseKey(path string, b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("key %s holds no PEM block; want a PEM private key", path)
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("key %s is encrypted; decrypt it to a file only root can read (openssl pkey -in %s -out ca.key) and retry", path, path)
	default:
		return nil, fmt.Errorf("key %s holds a PEM block of type %q; want PRIVATE KEY", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to parse key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key %s is a %T, which cannot sign", path, k)
	}
	return s, nil
}
