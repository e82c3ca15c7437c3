package shares

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseShare(t *testing.T) {
	_, all := split(t)
	v := all[0].Value
	type tc struct {
		name  string
		input string
		err   error
	}
	run := func(t *testing.T, tc tc) {
		got, err := ParseShare("key 1", tc.input)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if !strings.Contains(err.Error(), "key 1") {
				t.Errorf("error %q does not name the input", err)
			}
			if got != nil {
				t.Errorf("returned bytes on error")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, v) {
			t.Fatalf("decoded bytes differ")
		}
	}
	for _, c := range []tc{
		{name: "ok/hex", input: hex.EncodeToString(v)},
		{name: "ok/hex-upper", input: strings.ToUpper(hex.EncodeToString(v))},
		{name: "ok/base64", input: base64.StdEncoding.EncodeToString(v)},
		{name: "ok/surrounding-space", input: "  " + hex.EncodeToString(v) + "\n"},
		{name: "fail/empty", input: "", err: ErrEmptyShare},
		{name: "fail/blank", input: " \t\n", err: ErrEmptyShare},
		{name: "fail/bad-char", input: hex.EncodeToString(v)[:10] + "!" + hex.EncodeToString(v)[11:], err: ErrShareEncoding},
		{name: "fail/hex-typo-odd", input: hex.EncodeToString(v)[1:], err: ErrShareEncoding},
		{name: "fail/too-short", input: hex.EncodeToString(v[:32]), err: ErrShareLength},
		{name: "fail/too-long", input: hex.EncodeToString(append(v[:33:33], 1)), err: ErrShareLength},
		{name: "fail/root-token", input: "hvs.CAESIJ8aXJk", err: ErrShareEncoding},
		{name: "fail/base64-short", input: base64.StdEncoding.EncodeToString(v[:16]), err: ErrShareLength},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

func TestParseShares(t *testing.T) {
	_, all := split(t)
	h := func(i int) string { return hex.EncodeToString(all[i].Value) }
	b := func(i int) string { return base64.StdEncoding.EncodeToString(all[i].Value) }

	got, err := ParseShares([]string{h(0), b(1), h(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Index != 3 || !bytes.Equal(got[1].Value, all[1].Value) {
		t.Fatalf("unexpected result %v", got)
	}

	// The same share in two encodings is a duplicate, named by both inputs.
	_, err = ParseShares([]string{h(0), h(1), b(0)})
	if !errors.Is(err, ErrDuplicateShare) || !strings.Contains(err.Error(), "share 3") || !strings.Contains(err.Error(), "share 1") {
		t.Fatalf("err = %v, want a duplicate naming shares 3 and 1", err)
	}
	_, err = ParseShares([]string{h(0), "zz"})
	if !errors.Is(err, ErrShareEncoding) || !strings.Contains(err.Error(), "share 2") {
		t.Fatalf("err = %v, want an encoding error naming share 2", err)
	}
}

// TestShareRedacted checks that no formatting path prints share bytes.
func TestShareRedacted(t *testing.T) {
	_, all := split(t)
	s := all[0]
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l.Debug("share", "s", s, "list", all)
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %x %q %d", s, s, s, s, s, s, s),
		fmt.Sprint(all), fmt.Sprintf("%#v", all), logs.String(),
	}
	for _, out := range outs {
		for _, x := range all {
			for _, enc := range []string{x.Hex(), x.Base64(), strings.ToUpper(x.Hex())} {
				if strings.Contains(out, enc) {
					t.Fatalf("share bytes leaked in %q", out)
				}
			}
		}
		if !strings.Contains(out, "redacted") {
			t.Fatalf("output %q is not marked redacted", out)
		}
	}
}

func TestCheckDistinct(t *testing.T) {
	_, all := split(t)
	if err := CheckDistinct(all); err != nil {
		t.Fatal(err)
	}
	dupIdx := []Share{all[0], {Index: 1, Value: all[1].Value}}
	if err := CheckDistinct(dupIdx); !errors.Is(err, ErrDuplicateShare) {
		t.Fatalf("duplicate index: err = %v", err)
	}
	short := []Share{{Index: 1, Value: all[0].Value[:5]}}
	if err := CheckDistinct(short); !errors.Is(err, ErrShareLength) {
		t.Fatalf("short share: err = %v", err)
	}
}
