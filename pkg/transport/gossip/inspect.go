package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// memberlist message types (net.go in hashicorp/memberlist v0.7.0). Only the
// ones the transport looks at or refuses are listed.
const (
	msgPing         byte = 0
	msgIndirectPing byte = 1
	msgSuspect      byte = 3
	msgAlive        byte = 4
	msgDead         byte = 5
	msgPushPull     byte = 6
	msgUser         byte = 8
	msgCompound     byte = 7
	msgCompress     byte = 9
	msgEncrypt      byte = 10
	msgHasCrc       byte = 12
	msgErr          byte = 13 // the highest type memberlist defines
	msgHasLabel     byte = 244
)

// maxCompoundDepth bounds nested compound messages; memberlist never nests.
const maxCompoundDepth = 2

// deadNotice holds the fields of a dead message. A node that leaves
// gracefully announces itself dead with From == Node.
type deadNotice struct {
	Incarnation uint32
	Node        string
	From        string
}

// suspectNotice holds the fields of a suspect message.
type suspectNotice struct {
	Incarnation uint32
	Node        string
	From        string
}

// aliveNotice holds the fields of an alive message the transport looks at.
type aliveNotice struct {
	Incarnation uint32
	Node        string
	Addr        []byte
	Port        uint16
}

// pingSender holds the field that ping and indirect-ping messages use to name
// their sender; msgpack ignores the other fields.
type pingSender struct {
	SourceNode string
}

func decodeMsg(b []byte, v any) error {
	return codec.NewDecoderBytes(b, &codec.MsgpackHandle{}).Decode(v)
}

// filterPacket vets one incoming packet from the member whose certificate
// authenticated the connection, peerID. It returns the packet to hand to
// memberlist, without the messages that speak for another member (see
// speakfor.go), or nil when nothing is left. An error means the peer broke
// the rules and the connection is cut:
//
//   - pings and indirect pings must name peerID as their sender;
//   - compressed, encrypted and labelled packets are refused: this package
//     never produces them, so they can only hide a message from the check;
//   - message types memberlist does not define are refused.
//
// OnLeave, if set, is told the name of a node announcing its own graceful
// departure, before memberlist sees the message: memberlist's EventDelegate
// does not say whether a node left or failed.
func (t *Transport) filterPacket(buf []byte, peerID string) ([]byte, error) {
	return t.filterMessage(buf, peerID, 0)
}

func (t *Transport) filterMessage(buf []byte, peerID string, depth int) ([]byte, error) {
	if len(buf) == 0 {
		return nil, errors.New("empty message")
	}
	switch buf[0] {
	case msgPing, msgIndirectPing, msgAlive, msgSuspect, msgDead:
		keep, err := t.filterNotice(buf[0], buf[1:], peerID)
		if err != nil || !keep {
			return nil, err
		}
	case msgHasCrc:
		return t.filterChecksummed(buf, peerID, depth)
	case msgCompound:
		return t.filterCompound(buf, peerID, depth)
	case msgCompress, msgEncrypt, msgHasLabel:
		return nil, fmt.Errorf("message type %d from %s is not used over the TLS transport", buf[0], peerID)
	default:
		if buf[0] > msgErr {
			// memberlist would log and drop it; refusing it ends the
			// connection instead of one error line per junk packet.
			return nil, fmt.Errorf("unknown message type %d from %s", buf[0], peerID)
		}
	}
	return buf, nil
}

// filterNotice vets one ping, alive, suspect or dead message (its type and
// its body): false drops it, an error cuts the connection.
func (t *Transport) filterNotice(kind byte, body []byte, peerID string) (bool, error) {
	switch kind {
	case msgPing, msgIndirectPing:
		var p pingSender
		if err := decodeMsg(body, &p); err != nil {
			return false, fmt.Errorf("failed to decode ping from %s: %w", peerID, err)
		}
		if p.SourceNode != peerID {
			return false, fmt.Errorf("ping claims to come from %q but the connection is authenticated as %s", p.SourceNode, peerID)
		}
	case msgAlive:
		var a aliveNotice
		if err := decodeMsg(body, &a); err != nil {
			return false, fmt.Errorf("failed to decode alive message from %s: %w", peerID, err)
		}
		return t.judgeAlive(peerID, a.Node, a.Incarnation, a.Addr, a.Port) != drop, nil
	case msgSuspect:
		var s suspectNotice
		if err := decodeMsg(body, &s); err != nil {
			return false, fmt.Errorf("failed to decode suspect message from %s: %w", peerID, err)
		}
		return t.judgeAccusation(peerID, s.Node, s.Incarnation, false) != drop, nil
	case msgDead:
		var d deadNotice
		if err := decodeMsg(body, &d); err != nil {
			return false, fmt.Errorf("failed to decode dead message from %s: %w", peerID, err)
		}
		leave := d.Node == d.From
		if t.judgeAccusation(peerID, d.Node, d.Incarnation, leave) == drop {
			return false, nil
		}
		if leave && t.cfg.OnLeave != nil {
			t.cfg.OnLeave(d.Node)
		}
	}
	return true, nil
}

// filterChecksummed vets the message inside a checksummed one and, if some
// of it was dropped, checksums what is left.
func (t *Transport) filterChecksummed(buf []byte, peerID string, depth int) ([]byte, error) {
	if len(buf) < 5 {
		return nil, fmt.Errorf("truncated checksummed message from %s", peerID)
	}
	inner, err := t.filterMessage(buf[5:], peerID, depth)
	if err != nil || inner == nil {
		return nil, err
	}
	out := make([]byte, 5+len(inner))
	out[0] = msgHasCrc
	binary.BigEndian.PutUint32(out[1:5], crc32.ChecksumIEEE(inner))
	copy(out[5:], inner)
	return out, nil
}

// filterCompound vets every part of a compound message and keeps the parts
// that pass.
func (t *Transport) filterCompound(buf []byte, peerID string, depth int) ([]byte, error) {
	if depth >= maxCompoundDepth {
		return nil, fmt.Errorf("compound message from %s nests too deeply", peerID)
	}
	parts, err := splitCompound(buf[1:])
	if err != nil {
		return nil, fmt.Errorf("malformed compound message from %s: %w", peerID, err)
	}
	kept := parts[:0:0]
	for _, part := range parts {
		p, err := t.filterMessage(part, peerID, depth+1)
		if err != nil {
			return nil, err
		}
		if p != nil {
			kept = append(kept, p)
		}
	}
	switch {
	case len(kept) == 0:
		return nil, nil
	case len(kept) == len(parts):
		return buf, nil
	}
	return joinCompound(kept), nil
}

// noteOutgoing records the incarnation of every alive message about this
// node in an outgoing packet: the bound for suspicions of this node.
func (t *Transport) noteOutgoing(buf []byte, depth int) {
	if len(buf) == 0 {
		return
	}
	switch buf[0] {
	case msgAlive:
		var a aliveNotice
		if decodeMsg(buf[1:], &a) == nil && a.Node == t.said.self {
			t.said.note(a.Node, a.Incarnation)
		}
	case msgHasCrc:
		if len(buf) >= 5 {
			t.noteOutgoing(buf[5:], depth)
		}
	case msgCompound:
		if depth >= maxCompoundDepth {
			return
		}
		if parts, err := splitCompound(buf[1:]); err == nil {
			for _, p := range parts {
				t.noteOutgoing(p, depth+1)
			}
		}
	}
}

// joinCompound builds memberlist's compound format from parts (at most
// 255, each at most 64 KiB, as split from one).
func joinCompound(parts [][]byte) []byte {
	n := 2 + 2*len(parts)
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	out = append(out, msgCompound, byte(len(parts)))
	for _, p := range parts {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// splitCompound parses memberlist's compound format: a part count, one
// big-endian uint16 length per part, then the parts.
func splitCompound(buf []byte) ([][]byte, error) {
	if len(buf) < 1 {
		return nil, errors.New("missing part count")
	}
	n := int(buf[0])
	buf = buf[1:]
	if len(buf) < 2*n {
		return nil, errors.New("truncated part lengths")
	}
	lengths := make([]int, n)
	for i := range lengths {
		lengths[i] = int(binary.BigEndian.Uint16(buf[2*i:]))
	}
	buf = buf[2*n:]
	parts := make([][]byte, 0, n)
	for _, l := range lengths {
		if len(buf) < l {
			return nil, errors.New("truncated part")
		}
		parts = append(parts, buf[:l])
		buf = buf[l:]
	}
	return parts, nil
}
