package lifecycle

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// RootTokenWarning is printed with a root token shown in the clear.
const RootTokenWarning = `WARNING: this is Vault's initial root token. It is shown once and is not
stored anywhere. Use it to set up authentication, then revoke it
('vault token revoke -self'); generate a new one with the unseal keys
('vault operator generate-root') if ever needed.`

// WriteRootToken writes the root token once: encrypted to the age
// recipient if one is given, as Vault's PGP-encrypted blob if it is one, or
// in the clear with RootTokenWarning.
func WriteRootToken(w io.Writer, token string, pgpEncrypted bool, ageRecipient string) error {
	switch {
	case token == "":
		return nil
	case pgpEncrypted:
		_, err := fmt.Fprintf(w, "Root token, encrypted by Vault to the PGP key given (base64; decrypt with: base64 -d | gpg -dq):\n%s\n", token)
		return err
	case ageRecipient != "":
		r, err := age.ParseX25519Recipient(strings.TrimSpace(ageRecipient))
		if err != nil {
			return fmt.Errorf("--root-token-age-recipient: %w: want an age1... public key", err)
		}
		var buf bytes.Buffer
		aw := armor.NewWriter(&buf)
		ew, err := age.Encrypt(aw, r)
		if err != nil {
			return fmt.Errorf("failed to encrypt the root token: %w", err)
		}
		if _, err := io.WriteString(ew, token); err != nil {
			return err
		}
		if err := ew.Close(); err != nil {
			return err
		}
		if err := aw.Close(); err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "Root token, encrypted to %s (decrypt with: age -d -i KEYFILE):\n%s", r, buf.String())
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n\nRoot token: %s\n", RootTokenWarning, token)
	return err
}

// CheckAgeRecipient parses an age recipient before anything is changed.
func CheckAgeRecipient(s string) error {
	if _, err := age.ParseX25519Recipient(strings.TrimSpace(s)); err != nil {
		return fmt.Errorf("--root-token-age-recipient %q: %w: want an age1... public key", s, err)
	}
	return nil
}

// ReadPGPKey reads a PGP public key file for Vault's root_token_pgp_key,
// which wants the binary key in base64: an ASCII-armored key is unwrapped,
// a binary one encoded, and a file that is base64 already is used as is.
func ReadPGPKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("failed to read PGP key file: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if strings.HasPrefix(text, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		return dearmor(path, text)
	}
	if _, err := base64.StdEncoding.DecodeString(text); err == nil && text != "" {
		return text, nil
	}
	if len(b) > 0 && b[0]&0x80 != 0 { // an OpenPGP packet tag
		return base64.StdEncoding.EncodeToString(b), nil
	}
	return "", fmt.Errorf("PGP key file %s: neither an armored, a binary nor a base64 public key: export it with 'gpg --export KEYID > FILE'", path)
}

// dearmor returns the base64 body of an armored block: headers end at the
// first blank line, and the checksum line starts with '='.
func dearmor(path, text string) (string, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	var body strings.Builder
	inBody := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "-----END"):
			if body.Len() == 0 {
				break
			}
			if _, err := base64.StdEncoding.DecodeString(body.String()); err != nil {
				return "", fmt.Errorf("PGP key file %s: armored body is not base64: %w", path, err)
			}
			return body.String(), nil
		case !inBody:
			inBody = line == ""
		case strings.HasPrefix(line, "="):
		default:
			body.WriteString(line)
		}
	}
	return "", errors.New("PGP key file " + path + ": armored block has no body or no END line")
}
