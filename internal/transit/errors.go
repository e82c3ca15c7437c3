package transit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Kind is what went wrong with a Vault call, in terms an operator can act
// on.
type Kind int

// The kinds of error, from the most to the least specific.
const (
	// KindUnreachable: no connection, or it broke before an answer.
	KindUnreachable Kind = iota + 1
	// KindSealed: the node answered 503 (sealed, or standing by without an
	// active node).
	KindSealed
	// KindDenied: 403. The token is unknown, expired or revoked, used from
	// an address it is not bound to, or lacks the policy for the path.
	KindDenied
	// KindNotFound: the transit key (or the mount) does not exist.
	KindNotFound
	// KindBadRequest: any other 4xx.
	KindBadRequest
	// KindServer: a 5xx other than 503, or an unreadable answer.
	KindServer
)

var kindNames = map[Kind]string{
	KindUnreachable: "unreachable", KindSealed: "sealed", KindDenied: "denied",
	KindNotFound: "not_found", KindBadRequest: "bad_request", KindServer: "server",
}

// String is the kind's metric label.
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Error is a failed Vault call. Node is the address that gave the answer
// (empty when the error sums up several nodes), Msg is Vault's own message.
type Error struct {
	Kind   Kind
	Node   string
	Path   string
	Status int
	Msg    string
	Err    error
}

func (e *Error) Error() string {
	where := e.Node
	if where == "" {
		where = "every vault node"
	}
	switch {
	case e.Status != 0 && e.Msg != "":
		return fmt.Sprintf("vault %s: %s: HTTP %d: %s", where, e.Path, e.Status, e.Msg)
	case e.Status != 0:
		return fmt.Sprintf("vault %s: %s: HTTP %d", where, e.Path, e.Status)
	case e.Err != nil:
		return fmt.Sprintf("vault %s: %s: %s", where, e.Path, e.Err)
	default:
		return fmt.Sprintf("vault %s: %s: %s", where, e.Path, e.Kind)
	}
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of a *Error in err's chain, or 0.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// tryNext reports whether another node might answer better.
func (e *Error) tryNext() bool {
	return e.Kind == KindUnreachable || e.Kind == KindSealed || e.Kind == KindServer
}

// httpError classifies a non-2xx answer. Vault's 400 for a missing transit
// key ("encryption key not found") is the one message read: Vault has no
// code for it.
func httpError(node, path string, status int, body []byte) *Error {
	var eb struct {
		Errors []string `json:"errors"`
	}
	_ = json.Unmarshal(body, &eb)
	msg := strings.Join(eb.Errors, "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	e := &Error{Node: node, Path: path, Status: status, Msg: msg}
	switch {
	case status == 503:
		e.Kind = KindSealed
	case status == 403:
		e.Kind = KindDenied
	case status == 404:
		e.Kind = KindNotFound
	case status == 400 && strings.Contains(msg, "key not found"):
		e.Kind = KindNotFound
	case status >= 400 && status < 500:
		e.Kind = KindBadRequest
	default:
		e.Kind = KindServer
	}
	return e
}

// combine sums up the answers of every node tried. Sealed beats
// unreachable: "vault is sealed" is what the operator needs to know (and
// keyshare fixes) when some nodes are down and the rest sealed.
func combine(path string, tried []*Error) error {
	if len(tried) == 0 {
		return &Error{Kind: KindUnreachable, Path: path, Err: errors.New("no vault node tried")}
	}
	kind := KindUnreachable
	var parts []string
	for _, e := range tried {
		if e.Kind == KindSealed || (e.Kind == KindServer && kind == KindUnreachable) {
			kind = e.Kind
		}
		parts = append(parts, e.Error())
	}
	if len(tried) == 1 {
		return tried[0]
	}
	return &Error{Kind: kind, Path: path, Err: errors.New(strings.Join(parts, "; "))}
}
