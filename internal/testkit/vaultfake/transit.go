package vaultfake

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The transit half of the fake, for unit tests of the KMS plugin: the
// transit engine (keys, encrypt, decrypt, rotate), ACL policies, token
// roles with token_bound_cidrs, and the token self-service endpoints. It
// answers as Vault does where the plugin can tell: 503 "Vault is sealed"
// while sealed, 403 "permission denied" for an unknown, expired or revoked
// token and for a token used from an address it is not bound to, 403 for a
// path its policies do not grant (encrypt of a missing key needs create,
// as in Vault), "vault:vN:..." ciphertexts made with AES-GCM and the
// associated data. Everything lives in memory and survives Stop and Start
// (Vault keeps it in its storage); only the seal is lost.

// TransitStats counts transit calls.
type TransitStats struct {
	Encrypts, Decrypts, KeyReads, Denied, Sealed int
}

type transitState struct {
	mu       sync.Mutex // shared by the nodes of one fake cluster
	mounts   map[string]bool
	keys     map[string]*fakeKey // mount/name
	tokens   map[string]*fakeToken
	roles    map[string]fakeRole
	policies map[string]string
	auths    map[string]bool         // cert auth mounts
	certs    map[string]fakeCertRole // mount/role

	root  string
	stats TransitStats
	now   func() time.Time
}

type fakeKey struct {
	versions        [][]byte
	created         []int64
	minDecrypt      int
	deletionAllowed bool
}

type fakeToken struct {
	token, accessor string
	policies        []string
	meta            map[string]string
	cidrs           []netip.Prefix
	ttl, period     time.Duration
	renewable       bool
	expires         time.Time // zero: never
	root            bool
}

type fakeCertRole struct {
	pool     *x509.CertPool
	policies []string
	cidrs    []netip.Prefix
	period   time.Duration
}

type fakeRole struct {
	allowed   []string
	cidrs     []netip.Prefix
	period    time.Duration
	renewable bool
}

// transitOf returns the node's transit state, made on first use.
func (v *Vault) transitOf() *transitState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.transitLocked()
}

// transitLocked returns the transit state, made on first use, under v.mu.
func (v *Vault) transitLocked() *transitState {
	if v.transit == nil {
		ts := &transitState{mounts: map[string]bool{}, keys: map[string]*fakeKey{}, tokens: map[string]*fakeToken{},
			roles: map[string]fakeRole{}, policies: map[string]string{}, auths: map[string]bool{},
			certs: map[string]fakeCertRole{}, now: time.Now}
		ts.root = "hvs.root-" + hex.EncodeToString(randBytes(12))
		ts.tokens[ts.root] = &fakeToken{token: ts.root, accessor: hex.EncodeToString(randBytes(8)), root: true, policies: []string{"root"}}
		v.transit = ts
	}
	return v.transit
}

func (v *Vault) transitRoutes(mux *http.ServeMux) { mux.HandleFunc("/v1/", v.handleAPI) }

// JoinTransit makes v share leader's transit state (keys, tokens,
// policies), as the nodes of one Vault cluster share their storage. Call it
// before either serves.
func (v *Vault) JoinTransit(leader *Vault) {
	ts := leader.transitOf()
	v.mu.Lock()
	v.transit = ts
	v.mu.Unlock()
}

// TransitRootToken is a root token of the fake's token store (sys/init's
// root token works too).
func (v *Vault) TransitRootToken() string { return v.transitOf().root }

// TransitStats returns the transit counters so far (of the whole cluster).
func (v *Vault) TransitStats() TransitStats {
	ts := v.transitOf()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.stats
}

// APICalls counts the transit, token and auth calls this node answered
// (its share of the cluster's TransitStats).
func (v *Vault) APICalls() int { v.mu.Lock(); defer v.mu.Unlock(); return v.apiCalls }

// SetTransitClock sets the clock of key creation times and token TTLs.
func (v *Vault) SetTransitClock(now func() time.Time) {
	ts := v.transitOf()
	ts.mu.Lock()
	ts.now = now
	ts.mu.Unlock()
}

// RevokeAll revokes every token but the root, as if an operator had.
func (v *Vault) RevokeAll() {
	ts := v.transitOf()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for k, t := range ts.tokens {
		if !t.root {
			delete(ts.tokens, k)
		}
	}
}

// DeleteTransitKey deletes a key regardless of deletion_allowed.
func (v *Vault) DeleteTransitKey(mount, name string) {
	ts := v.transitOf()
	ts.mu.Lock()
	delete(ts.keys, mount+"/"+name)
	ts.mu.Unlock()
}

var pathRule = regexp.MustCompile(`path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}`)

// allowed is the ACL check: the token's policies (and the default policy's
// token self-service paths) grant capability on path.
func (ts *transitState) allowed(t *fakeToken, path, capability string) bool {
	if t.root {
		return true
	}
	switch path {
	case "auth/token/lookup-self", "auth/token/renew-self", "auth/token/revoke-self":
		return true
	}
	for _, p := range t.policies {
		for _, m := range pathRule.FindAllStringSubmatch(ts.policies[p], -1) {
			if m[1] == path && strings.Contains(m[2], `"`+capability+`"`) {
				return true
			}
		}
	}
	return false
}

func (v *Vault) handleAPI(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	v.apiCalls++
	v.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" {
		method = "LIST"
	}
	body := map[string]any{}
	if r.Method == http.MethodPost || r.Method == http.MethodPut {
		if !decodeBody(w, r, &body) {
			return
		}
	}
	v.mu.Lock()
	ts, sealed, initRoot := v.transitLocked(), v.sealed, v.root
	v.mu.Unlock()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if sealed {
		ts.stats.Sealed++
		writeErr(w, http.StatusServiceUnavailable, "Vault is sealed")
		return
	}
	if p := strings.Split(path, "/"); len(p) == 3 && p[0] == "auth" && p[2] == "login" && ts.auths[p[1]] {
		ts.certLogin(w, r, p[1], str(body["name"]))
		return
	}
	tok := ts.authenticate(r, initRoot)
	if tok == nil || !ts.allowed(tok, path, capability(ts, method, path)) {
		ts.stats.Denied++
		writeErr(w, http.StatusForbidden, "permission denied")
		return
	}
	ts.route(w, method, path, body, tok)
}

// authenticate finds the request's token; nil if unknown, expired, or used
// from an address outside its bound CIDRs.
func (ts *transitState) authenticate(r *http.Request, initRoot string) *fakeToken {
	tv := r.Header.Get("X-Vault-Token")
	if tv != "" && tv == initRoot {
		return &fakeToken{token: tv, root: true, accessor: "init-root"}
	}
	t := ts.tokens[tv]
	if t == nil {
		return nil
	}
	if !t.expires.IsZero() && ts.now().After(t.expires) {
		delete(ts.tokens, tv)
		return nil
	}
	if len(t.cidrs) > 0 {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		ip, err := netip.ParseAddr(host)
		if err != nil || !slices.ContainsFunc(t.cidrs, func(p netip.Prefix) bool { return p.Contains(ip.Unmap()) }) {
			return nil
		}
	}
	return t
}

// capability is what Vault's ACL asks for: encrypt of a key that does not
// exist is a create.
func capability(ts *transitState, method, path string) string {
	switch method {
	case http.MethodGet:
		return "read"
	case "LIST":
		return "list"
	case http.MethodDelete:
		return "delete"
	}
	parts := strings.Split(path, "/")
	if len(parts) == 3 && parts[1] == "encrypt" && ts.keys[parts[0]+"/"+parts[2]] == nil {
		return "create"
	}
	return "update"
}

func (ts *transitState) route(w http.ResponseWriter, method, path string, body map[string]any, tok *fakeToken) {
	p := strings.Split(path, "/")
	switch {
	case path == "sys/mounts" && method == http.MethodGet:
		out := map[string]any{}
		for m := range ts.mounts {
			out[m+"/"] = map[string]any{"type": "transit"}
		}
		writeJSON(w, 200, map[string]any{"data": out})
	case len(p) >= 3 && p[0] == "sys" && p[1] == "mounts":
		m := strings.Join(p[2:], "/")
		if ts.mounts[m] {
			writeErr(w, 400, "path is already in use at "+m+"/")
			return
		}
		ts.mounts[m] = true
		w.WriteHeader(204)
	case path == "sys/auth" && method == http.MethodGet:
		out := map[string]any{"token/": map[string]any{"type": "token"}}
		for m := range ts.auths {
			out[m+"/"] = map[string]any{"type": "cert"}
		}
		writeJSON(w, 200, map[string]any{"data": out})
	case len(p) == 3 && p[0] == "sys" && p[1] == "auth":
		ts.auths[p[2]] = true
		w.WriteHeader(204)
	case len(p) == 4 && p[0] == "auth" && ts.auths[p[1]] && p[2] == "certs":
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(str(body["certificate"]))) {
			writeErr(w, 400, "failed to parse certificate")
			return
		}
		cidrs, ok := boundCIDRs(w, body)
		if !ok {
			return
		}
		ts.certs[p[1]+"/"+p[3]] = fakeCertRole{pool: pool, policies: strs(body["token_policies"]), cidrs: cidrs, period: duration(body["token_period"])}
		w.WriteHeader(204)
	case len(p) == 4 && p[0] == "sys" && p[1] == "policies" && p[2] == "acl":
		if method == http.MethodGet {
			writeJSON(w, 200, map[string]any{"data": map[string]any{"name": p[3], "policy": ts.policies[p[3]]}})
			return
		}
		ts.policies[p[3]] = str(body["policy"])
		w.WriteHeader(204)
	case strings.HasPrefix(path, "auth/token/"):
		ts.tokenRoute(w, method, p[2:], body, tok)
	case len(p) >= 3 && ts.mounts[p[0]]:
		ts.transitRoute(w, method, p, body)
	default:
		writeErr(w, 404, "no handler for route \""+path+"\". route entry not found.")
	}
}

func (ts *transitState) transitRoute(w http.ResponseWriter, method string, p []string, body map[string]any) {
	mount, op, name := p[0], p[1], p[2]
	k := ts.keys[mount+"/"+name]
	switch {
	case op == "keys" && len(p) == 3 && method == http.MethodGet:
		ts.stats.KeyReads++
		if k == nil {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"errors":[]}`))
			return
		}
		vers := map[string]int64{}
		for i, c := range k.created {
			vers[strconv.Itoa(i+1)] = c
		}
		writeJSON(w, 200, map[string]any{"data": map[string]any{
			"name": name, "type": "aes256-gcm96", "latest_version": len(k.versions), "min_decryption_version": k.minDecrypt,
			"min_encryption_version": 0, "deletion_allowed": k.deletionAllowed, "exportable": false, "keys": vers}})
	case op == "keys" && len(p) == 3:
		if k == nil {
			ts.keys[mount+"/"+name] = ts.newKey()
		}
		w.WriteHeader(204)
	case op == "keys" && len(p) == 4 && p[3] == "rotate" && k != nil:
		k.versions = append(k.versions, randBytes(32))
		k.created = append(k.created, ts.now().Unix())
		w.WriteHeader(204)
	case op == "keys" && len(p) == 4 && p[3] == "config" && k != nil:
		if b, ok := body["deletion_allowed"].(bool); ok {
			k.deletionAllowed = b
		}
		if n, ok := body["min_decryption_version"].(float64); ok {
			k.minDecrypt = int(n)
		}
		w.WriteHeader(204)
	case op == "encrypt" && len(p) == 3:
		if k == nil {
			k = ts.newKey() // reached only with the create capability, as in Vault
			ts.keys[mount+"/"+name] = k
		}
		ts.stats.Encrypts++
		ts.encrypt(w, k, body)
	case op == "decrypt" && len(p) == 3:
		ts.stats.Decrypts++
		if k == nil {
			writeErr(w, 400, "encryption key not found")
			return
		}
		ts.decrypt(w, k, body)
	default:
		writeErr(w, 404, "unsupported path")
	}
}

func (ts *transitState) newKey() *fakeKey {
	return &fakeKey{versions: [][]byte{randBytes(32)}, created: []int64{ts.now().Unix()}, minDecrypt: 1}
}

func (ts *transitState) encrypt(w http.ResponseWriter, k *fakeKey, body map[string]any) {
	pt, err := base64.StdEncoding.DecodeString(str(body["plaintext"]))
	if err != nil {
		writeErr(w, 400, "failed to base64-decode plaintext")
		return
	}
	ad, err := base64.StdEncoding.DecodeString(str(body["associated_data"]))
	if err != nil {
		writeErr(w, 400, "failed to base64-decode associated_data")
		return
	}
	ver := len(k.versions)
	if n, ok := body["key_version"].(float64); ok && n > 0 {
		ver = int(n)
	}
	if ver > len(k.versions) {
		writeErr(w, 400, "requested version for encryption is higher than the latest key version")
		return
	}
	aead := gcm(k.versions[ver-1])
	nonce := randBytes(aead.NonceSize())
	ct := aead.Seal(nonce, nonce, pt, ad)
	writeJSON(w, 200, map[string]any{"data": map[string]any{
		"ciphertext": fmt.Sprintf("vault:v%d:%s", ver, base64.StdEncoding.EncodeToString(ct)), "key_version": ver}})
}

func (ts *transitState) decrypt(w http.ResponseWriter, k *fakeKey, body map[string]any) {
	ct := str(body["ciphertext"])
	rest, ok := strings.CutPrefix(ct, "vault:v")
	num, b64, ok2 := strings.Cut(rest, ":")
	ver, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil || ver < 1 || ver > len(k.versions) {
		writeErr(w, 400, "invalid ciphertext: no prefix")
		return
	}
	if ver < k.minDecrypt {
		writeErr(w, 400, "ciphertext or signature version is disallowed by policy (too old)")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	ad, err2 := base64.StdEncoding.DecodeString(str(body["associated_data"]))
	aead := gcm(k.versions[ver-1])
	if err != nil || err2 != nil || len(raw) < aead.NonceSize() {
		writeErr(w, 400, "invalid ciphertext: could not decode")
		return
	}
	pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], ad)
	if err != nil {
		writeErr(w, 400, "cipher: message authentication failed")
		return
	}
	writeJSON(w, 200, map[string]any{"data": map[string]any{"plaintext": base64.StdEncoding.EncodeToString(pt)}})
}

func gcm(key []byte) cipher.AEAD {
	b, _ := aes.NewCipher(key)
	a, _ := cipher.NewGCM(b)
	return a
}

func str(v any) string { s, _ := v.(string); return s }

func strs(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			out = append(out, str(e))
		}
	case string:
		for _, e := range strings.Split(x, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// boundCIDRs reads token_bound_cidrs from a request body; it answers 400
// and returns false for one that does not parse.
func boundCIDRs(w http.ResponseWriter, body map[string]any) ([]netip.Prefix, bool) {
	var cidrs []netip.Prefix
	for _, c := range strs(body["token_bound_cidrs"]) {
		pr, err := netip.ParsePrefix(c)
		if err != nil {
			writeErr(w, 400, "invalid token_bound_cidrs: "+c)
			return nil, false
		}
		cidrs = append(cidrs, pr)
	}
	return cidrs, true
}

func duration(v any) time.Duration {
	switch x := v.(type) {
	case float64:
		return time.Duration(x) * time.Second
	case string:
		if d, err := time.ParseDuration(x); err == nil {
			return d
		}
		if n, err := strconv.Atoi(x); err == nil {
			return time.Duration(n) * time.Second
		}
	}
	return 0
}
