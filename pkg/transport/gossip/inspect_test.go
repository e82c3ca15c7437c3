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
	t := &Transport{cfg: TransportConfig{OnLeave: onLeave}, said: newAnnouncements("spiffe://keyshare.test/holder/self"), warns: newWarnLimiter(), log: discardLogger()}
	_, err := t.filterPacket(buf, peer)
	return err
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

func FuzzCheckPacket(f *testing.F) {
	f.Add([]byte{msgPing, 0x80})
	f.Add(compound([]byte{msgPing, 0x80}, []byte{msgDead, 0x80}))
	f.Add([]byte{msgHasCrc, 0, 0, 0, 0, msgCompound, 2, 0, 1})
	f.Fuzz(func(t *testing.T, buf []byte) {
		_ = checkPacket(buf, "spiffe://keyshare.test/holder/a", func(string) {})
	})
}
