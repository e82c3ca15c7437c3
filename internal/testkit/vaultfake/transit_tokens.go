package vaultfake

import (
	"crypto/x509"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// The token half of the fake's transit support: token roles and creation,
// lookup, renewal and revocation (self and by accessor), the accessor list,
// and the TLS certificate auth method's login.
func (ts *transitState) tokenRoute(w http.ResponseWriter, method string, p []string, body map[string]any, tok *fakeToken) {
	op := strings.Join(p, "/")
	switch {
	case op == "lookup-self":
		writeJSON(w, 200, map[string]any{"data": ts.describe(tok)})
	case op == "renew-self":
		if !tok.renewable {
			writeErr(w, 400, "lease is not renewable")
			return
		}
		ttl := tok.period
		if ttl == 0 {
			ttl = tok.ttl
		}
		tok.expires = ts.now().Add(ttl)
		writeJSON(w, 200, map[string]any{"auth": map[string]any{"accessor": tok.accessor, "lease_duration": int64(ttl.Seconds()), "renewable": true}})
	case op == "revoke-self":
		delete(ts.tokens, tok.token)
		w.WriteHeader(204)
	case op == "lookup-accessor" || op == "revoke-accessor":
		t := ts.byAccessor(str(body["accessor"]))
		if t == nil {
			writeErr(w, 400, "invalid accessor")
			return
		}
		if op == "revoke-accessor" {
			delete(ts.tokens, t.token)
			w.WriteHeader(204)
			return
		}
		writeJSON(w, 200, map[string]any{"data": ts.describe(t)})
	case op == "accessors" && method == "LIST":
		var keys []string
		for _, t := range ts.tokens {
			keys = append(keys, t.accessor)
		}
		writeJSON(w, 200, map[string]any{"data": map[string]any{"keys": keys}})
	case len(p) == 2 && p[0] == "roles":
		cidrs, ok := boundCIDRs(w, body)
		if !ok {
			return
		}
		ren, ok := body["renewable"].(bool)
		ts.roles[p[1]] = fakeRole{allowed: strs(body["allowed_policies"]), cidrs: cidrs, period: duration(body["token_period"]), renewable: ren || !ok}
		w.WriteHeader(204)
	case op == "create" || (len(p) == 2 && p[0] == "create"):
		ts.create(w, p, body)
	default:
		writeErr(w, 404, "unsupported path")
	}
}

func (ts *transitState) create(w http.ResponseWriter, p []string, body map[string]any) {
	t := &fakeToken{token: "hvs." + hex.EncodeToString(randBytes(16)), accessor: hex.EncodeToString(randBytes(12)),
		policies: strs(body["policies"]), meta: map[string]string{}, renewable: true}
	if m, ok := body["meta"].(map[string]any); ok {
		for k, v := range m {
			t.meta[k] = str(v)
		}
	}
	t.ttl = duration(body["ttl"])
	t.period = duration(body["period"])
	if r, ok := body["renewable"].(bool); ok {
		t.renewable = r
	}
	if len(p) == 2 {
		role, ok := ts.roles[p[1]]
		if !ok {
			writeErr(w, 400, "unknown role "+p[1])
			return
		}
		for _, pol := range t.policies {
			if !slices.Contains(role.allowed, pol) {
				writeErr(w, 400, "token policies ["+pol+"] must be subset of the role's allowed policies")
				return
			}
		}
		t.cidrs, t.period, t.renewable = role.cidrs, role.period, role.renewable
	}
	if t.period > 0 {
		t.ttl = t.period
	}
	if t.ttl > 0 {
		t.expires = ts.now().Add(t.ttl)
	}
	ts.tokens[t.token] = t
	writeJSON(w, 200, map[string]any{"auth": map[string]any{"client_token": t.token, "accessor": t.accessor,
		"policies": t.policies, "lease_duration": int64(t.ttl.Seconds()), "renewable": t.renewable}})
}

// certLogin is auth/<mount>/login: the client's verified certificate,
// from an address inside the role's token_bound_cidrs, gets a token.
func (ts *transitState) certLogin(w http.ResponseWriter, r *http.Request, mount, role string) {
	cr, ok := ts.certs[mount+"/"+role]
	if !ok || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		ts.stats.Denied++
		writeErr(w, http.StatusBadRequest, "invalid certificate or no client certificate supplied")
		return
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: cr.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		ts.stats.Denied++
		writeErr(w, http.StatusBadRequest, "invalid certificate or no client certificate supplied")
		return
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ip, err := netip.ParseAddr(host)
	if len(cr.cidrs) > 0 && (err != nil || !slices.ContainsFunc(cr.cidrs, func(p netip.Prefix) bool { return p.Contains(ip.Unmap()) })) {
		ts.stats.Denied++
		writeErr(w, http.StatusForbidden, "permission denied")
		return
	}
	t := &fakeToken{token: "hvs." + hex.EncodeToString(randBytes(16)), accessor: hex.EncodeToString(randBytes(12)),
		policies: cr.policies, meta: map[string]string{"cert_name": role}, cidrs: cr.cidrs, period: cr.period, ttl: cr.period, renewable: true}
	if t.ttl > 0 {
		t.expires = ts.now().Add(t.ttl)
	}
	ts.tokens[t.token] = t
	writeJSON(w, 200, map[string]any{"auth": map[string]any{"client_token": t.token, "accessor": t.accessor,
		"policies": t.policies, "lease_duration": int64(t.ttl.Seconds()), "renewable": true}})
}

func (ts *transitState) byAccessor(a string) *fakeToken {
	for _, t := range ts.tokens {
		if t.accessor == a && a != "" {
			return t
		}
	}
	return nil
}

func (ts *transitState) describe(t *fakeToken) map[string]any {
	ttl := int64(0)
	if !t.expires.IsZero() {
		ttl = int64(max(t.expires.Sub(ts.now()), 0).Seconds())
	}
	var cidrs []string
	for _, c := range t.cidrs {
		cidrs = append(cidrs, c.String())
	}
	return map[string]any{"accessor": t.accessor, "policies": t.policies, "meta": t.meta, "ttl": ttl,
		"period": int64(t.period.Seconds()), "renewable": t.renewable, "bound_cidrs": cidrs}
}
