package gossip

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func compound(parts ...[]byte) []byte {
	b := []byte{msgCompound, byte(len(parts))}
	for _, p := range parts {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	}
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// checkPacket runs a bare transport's packet filter as peer.
func checkPacket(buf []byte, peer string, onLeave func(string)) error {
	_, err := filterOnce(buf, peer, onLeave)
	return err
}

// filterOnce runs a fresh bare transport's packet filter as peer and
// returns what it would hand to memberlist.
func filterOnce(buf []byte, peer string, onLeave func(string)) ([]byte, error) {
	t := &Transport{cfg: TransportConfig{OnLeave: onLeave}, said: newAnnouncements("spiffe://keyshare.test/holder/self"), warns: newWarnLimiter(), log: discardLogger()}
	return t.filterPacket(buf, peer)
}

func TestCheckPacket(t *testing.T) {
	const me, other = "spiffe://keyshare.test/holder/a", "spiffe://keyshare.test/holder/b"
	type tc struct {
		name    string
		buf     []byte
		wantErr bool
	}
	mine, theirs := encodePing(t, me), encodePing(t, other)
	tests := []tc{
		{name: "ok/ping from the peer", buf: mine},
		{name: "ok/other message", buf: []byte{4, 0x80}},
		{name: "ok/compound", buf: compound(mine, []byte{2, 0x80})},
		{name: "ok/checksummed ping", buf: append([]byte{msgHasCrc, 1, 2, 3, 4}, mine...)},
		{name: "fail/ping from someone else", buf: theirs, wantErr: true},
		{name: "fail/ping without sender", buf: encodePing(t, ""), wantErr: true},
		{name: "fail/indirect ping from someone else", buf: append([]byte{msgIndirectPing}, theirs[1:]...), wantErr: true},
		{name: "fail/foreign ping in a compound", buf: compound([]byte{4, 0x80}, theirs), wantErr: true},
		{name: "fail/foreign ping in a checksummed compound", buf: append([]byte{msgHasCrc, 0, 0, 0, 0}, compound(theirs)...), wantErr: true},
		{name: "fail/nested compounds", buf: compound(compound(compound(mine))), wantErr: true},
		{name: "fail/truncated compound", buf: compound(mine)[:5], wantErr: true},
		{name: "fail/compressed", buf: []byte{msgCompress, 0x80}, wantErr: true},
		{name: "fail/encrypted", buf: []byte{msgEncrypt, 1}, wantErr: true},
		{name: "fail/labelled", buf: []byte{msgHasLabel, 1, 'x'}, wantErr: true},
		{name: "fail/garbage ping", buf: []byte{msgPing, 0xc1}, wantErr: true},
		{name: "fail/empty", buf: nil, wantErr: true},
	}
	run := func(t *testing.T, tc tc) {
		err := checkPacket(tc.buf, me, nil)
		if (err != nil) != tc.wantErr {
			t.Fatalf("checkPacket = %v, want error %v", err, tc.wantErr)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, tc) })
	}
}

func TestCheckPacketReportsLeaves(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteByte(msgDead)
	// msgpack map {"Node": "x", "From": "x", "Incarnation": 3}
	buf.Write([]byte{0x83, 0xa4, 'N', 'o', 'd', 'e', 0xa1, 'x', 0xa4, 'F', 'r', 'o', 'm', 0xa1, 'x',
		0xab, 'I', 'n', 'c', 'a', 'r', 'n', 'a', 't', 'i', 'o', 'n', 0x03})
	var left []string
	if err := checkPacket(compound(buf.Bytes()), "x", func(n string) { left = append(left, n) }); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != "x" {
		t.Fatalf("leaves reported: %v, want [x]", left)
	}
}

// FuzzCheckPacket: the filter never panics, and what it hands to
// memberlist is a fixed point: no longer than the input, and passed through
// unchanged by the filter again (nothing it let through would be refused or
// trimmed on a second look, so no message can hide from the check inside
// another). A refused packet yields nothing.
func FuzzCheckPacket(f *testing.F) {
	const peer = "spiffe://keyshare.test/holder/a"
	f.Add([]byte{msgPing, 0x80})
	f.Add(compound([]byte{msgPing, 0x80}, []byte{msgDead, 0x80}))
	f.Add([]byte{msgHasCrc, 0, 0, 0, 0, msgCompound, 2, 0, 1})
	f.Add(encodePing(f, peer))
	f.Add(compound(encodePing(f, peer), []byte{4, 0x80}, encodePing(f, "spiffe://keyshare.test/holder/b")))
	f.Fuzz(func(t *testing.T, buf []byte) {
		out, err := filterOnce(buf, peer, func(string) {})
		if err != nil {
			if out != nil {
				t.Fatalf("refused packet (%v) still yields %d bytes", err, len(out))
			}
			return
		}
		if out == nil {
			return
		}
		if len(out) > len(buf) {
			t.Fatalf("filter grew the packet from %d to %d bytes", len(buf), len(out))
		}
		again, err := filterOnce(out, peer, func(string) {})
		if err != nil {
			t.Fatalf("the filter's own output is refused: %v\nin  %x\nout %x", err, buf, out)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("the filter's output changes on a second pass:\nin   %x\nout  %x\nout2 %x", buf, out, again)
		}
	})
}
