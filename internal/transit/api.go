package transit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Key is what GET <mount>/keys/<name> says about a transit key.
type Key struct {
	Name                 string
	Type                 string
	LatestVersion        int
	MinDecryptionVersion int
	MinEncryptionVersion int
	DeletionAllowed      bool
	Exportable           bool
	// Created is each version's creation time (Vault keeps seconds).
	Created map[int]time.Time
}

type keyData struct {
	Data struct {
		Name                 string                     `json:"name"`
		Type                 string                     `json:"type"`
		LatestVersion        int                        `json:"latest_version"`
		MinDecryptionVersion int                        `json:"min_decryption_version"`
		MinEncryptionVersion int                        `json:"min_encryption_version"`
		DeletionAllowed      bool                       `json:"deletion_allowed"`
		Exportable           bool                       `json:"exportable"`
		Keys                 map[string]json.RawMessage `json:"keys"`
	} `json:"data"`
}

// ReadKey reads a transit key's metadata (never its material).
func (c *Client) ReadKey(ctx context.Context, mount, name string) (Key, error) {
	var r keyData
	path := mount + "/keys/" + url.PathEscape(name)
	if err := c.Do(ctx, "GET", path, nil, &r); err != nil {
		return Key{}, err
	}
	d := r.Data
	k := Key{Name: d.Name, Type: d.Type, LatestVersion: d.LatestVersion, MinDecryptionVersion: d.MinDecryptionVersion,
		MinEncryptionVersion: d.MinEncryptionVersion, DeletionAllowed: d.DeletionAllowed, Exportable: d.Exportable,
		Created: map[int]time.Time{}}
	for v, raw := range d.Keys {
		n, err := strconv.Atoi(v)
		if err != nil {
			return Key{}, fmt.Errorf("transit key %s/%s: version %q is not a number", mount, name, v)
		}
		var secs int64
		if err := json.Unmarshal(raw, &secs); err == nil {
			k.Created[n] = time.Unix(secs, 0).UTC()
			continue
		}
		var obj struct {
			CreationTime time.Time `json:"creation_time"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return Key{}, fmt.Errorf("transit key %s/%s: version %d: unreadable creation time: %w", mount, name, n, err)
		}
		k.Created[n] = obj.CreationTime.UTC()
	}
	if k.LatestVersion < 1 || k.Created[k.LatestVersion].IsZero() {
		return Key{}, fmt.Errorf("transit key %s/%s: no creation time for its latest version %d", mount, name, k.LatestVersion)
	}
	return k, nil
}

// Encrypt encrypts plaintext with version (0: the latest) of the key, bound
// to ad (associated data; nil for none), and returns the vault:vN:...
// ciphertext and N.
func (c *Client) Encrypt(ctx context.Context, mount, name string, plaintext, ad []byte, version int) (string, int, error) {
	body := map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plaintext)}
	if ad != nil {
		body["associated_data"] = base64.StdEncoding.EncodeToString(ad)
	}
	if version > 0 {
		body["key_version"] = version
	}
	var r struct {
		Data struct {
			Ciphertext string `json:"ciphertext"`
			KeyVersion int    `json:"key_version"`
		} `json:"data"`
	}
	path := mount + "/encrypt/" + url.PathEscape(name)
	if err := c.Do(ctx, "POST", path, body, &r); err != nil {
		return "", 0, err
	}
	v, err := CiphertextVersion(r.Data.Ciphertext)
	if err != nil {
		return "", 0, &Error{Kind: KindServer, Path: path, Err: err}
	}
	return r.Data.Ciphertext, v, nil
}

// Decrypt decrypts a vault:vN:... ciphertext bound to ad.
func (c *Client) Decrypt(ctx context.Context, mount, name, ciphertext string, ad []byte) ([]byte, error) {
	body := map[string]any{"ciphertext": ciphertext}
	if ad != nil {
		body["associated_data"] = base64.StdEncoding.EncodeToString(ad)
	}
	var r struct {
		Data struct {
			Plaintext string `json:"plaintext"`
		} `json:"data"`
	}
	path := mount + "/decrypt/" + url.PathEscape(name)
	if err := c.Do(ctx, "POST", path, body, &r); err != nil {
		return nil, err
	}
	pt, err := base64.StdEncoding.DecodeString(r.Data.Plaintext)
	if err != nil {
		return nil, &Error{Kind: KindServer, Path: path, Err: fmt.Errorf("plaintext is not base64")}
	}
	return pt, nil
}

// RotateKey adds a new version to the key and returns the new latest.
func (c *Client) RotateKey(ctx context.Context, mount, name string) (int, error) {
	if err := c.Do(ctx, "POST", mount+"/keys/"+url.PathEscape(name)+"/rotate", map[string]any{}, nil); err != nil {
		return 0, err
	}
	k, err := c.ReadKey(ctx, mount, name)
	return k.LatestVersion, err
}

// CiphertextVersion reads N from "vault:vN:...".
func CiphertextVersion(ct string) (int, error) {
	rest, ok := strings.CutPrefix(ct, "vault:v")
	if !ok {
		return 0, fmt.Errorf("ciphertext does not start with vault:v")
	}
	num, _, ok := strings.Cut(rest, ":")
	v, err := strconv.Atoi(num)
	if !ok || err != nil || v < 1 {
		return 0, fmt.Errorf("ciphertext has no key version after vault:v")
	}
	return v, nil
}

// Token is what lookup-self (or lookup-accessor) says about a token. It
// never holds the token itself.
type Token struct {
	Accessor    string            `json:"accessor"`
	DisplayName string            `json:"display_name"`
	Policies    []string          `json:"policies"`
	Meta        map[string]string `json:"meta"`
	TTLSeconds  int64             `json:"ttl"`
	Period      int64             `json:"period"`
	Renewable   bool              `json:"renewable"`
	BoundCIDRs  []string          `json:"bound_cidrs"`
	ExpireTime  string            `json:"expire_time"`
}

// TTL is the time left.
func (t Token) TTL() time.Duration { return time.Duration(t.TTLSeconds) * time.Second }

// LookupSelf describes the client's own token.
func (c *Client) LookupSelf(ctx context.Context) (Token, error) {
	return c.lookup(ctx, "GET", "auth/token/lookup-self", nil)
}

// LookupAccessor describes the token with that accessor (admin).
func (c *Client) LookupAccessor(ctx context.Context, accessor string) (Token, error) {
	return c.lookup(ctx, "POST", "auth/token/lookup-accessor", map[string]any{"accessor": accessor})
}

// lookup reads the Token in the data of a token lookup's answer.
func (c *Client) lookup(ctx context.Context, method, path string, body any) (Token, error) {
	var r struct {
		Data Token `json:"data"`
	}
	if err := c.Do(ctx, method, path, body, &r); err != nil {
		return Token{}, err
	}
	return r.Data, nil
}

// RenewSelf renews the client's own token and returns its new TTL.
func (c *Client) RenewSelf(ctx context.Context) (time.Duration, error) {
	var r struct {
		Auth struct {
			LeaseDuration int64 `json:"lease_duration"`
		} `json:"auth"`
	}
	if err := c.Do(ctx, "POST", "auth/token/renew-self", map[string]any{}, &r); err != nil {
		return 0, err
	}
	return time.Duration(r.Auth.LeaseDuration) * time.Second, nil
}

// Login logs in with the TLS certificate auth method mounted at mount,
// as role, and returns the new token (a secret) and what Vault said of it.
// The client's certificate (Options.ClientCertFile) is the credential.
func (c *Client) Login(ctx context.Context, mount, role string) (string, Token, error) {
	var r struct {
		Auth struct {
			ClientToken   string            `json:"client_token"`
			Accessor      string            `json:"accessor"`
			Policies      []string          `json:"policies"`
			Metadata      map[string]string `json:"metadata"`
			LeaseDuration int64             `json:"lease_duration"`
			Renewable     bool              `json:"renewable"`
		} `json:"auth"`
	}
	ctx = context.WithValue(ctx, noTokenKey{}, true) // a stale token must not spoil the login
	if err := c.Do(ctx, "POST", "auth/"+mount+"/login", map[string]any{"name": role}, &r); err != nil {
		return "", Token{}, err
	}
	a := r.Auth
	if a.ClientToken == "" {
		return "", Token{}, &Error{Kind: KindServer, Path: "auth/" + mount + "/login", Err: fmt.Errorf("no token in the answer")}
	}
	return a.ClientToken, Token{Accessor: a.Accessor, Policies: a.Policies, Meta: a.Metadata,
		TTLSeconds: a.LeaseDuration, Renewable: a.Renewable}, nil
}
