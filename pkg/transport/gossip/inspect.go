package gossip

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// memberlist message types (net.go in hashicorp/memberlist v0.7.0). Only the
// ones the transport looks at or refuses are listed.
const (
	msgPing         byte = 0
	msgIndirectPing byte = 1
	msgDead         byte = 5
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
	Node string
	From string
}

// pingSender holds the field that ping and indirect-ping messages use to name
// their sender; msgpack ignores the other fields.
type pingSender struct {
	SourceNode string
}

// checkPacket enforces, on one incoming packet, that every message naming
// its sender names the peer whose certificate the connection was
// authenticated with. Pings and indirect pings carry SourceNode; the other
// messages are either about third parties (gossip relays alive, suspect and
// dead messages on others' behalf, which the Alive delegate vets) or carry
// no name. Compressed, encrypted and labelled packets are refused: this
// package never produces them, so they can only hide a name from the check.
//
// onLeave, if not nil, is told the name of every node announcing its own
// graceful departure, before memberlist sees the message: memberlist's
// EventDelegate does not say whether a node left or failed.
func checkPacket(buf []byte, peerID string, onLeave func(node string)) error {
	return checkMessage(buf, peerID, onLeave, 0)
}

func checkMessage(buf []byte, peerID string, onLeave func(string), depth int) error {
	if len(buf) == 0 {
		return errors.New("empty message")
	}
	switch buf[0] {
	case msgPing, msgIndirectPing:
		var p pingSender
		if err := codec.NewDecoderBytes(buf[1:], &codec.MsgpackHandle{}).Decode(&p); err != nil {
			return fmt.Errorf("failed to decode ping from %s: %w", peerID, err)
		}
		if p.SourceNode != peerID {
			return fmt.Errorf("ping claims to come from %q but the connection is authenticated as %s", p.SourceNode, peerID)
		}
	case msgDead:
		var d deadNotice
		if err := codec.NewDecoderBytes(buf[1:], &codec.MsgpackHandle{}).Decode(&d); err != nil {
			return fmt.Errorf("failed to decode dead message from %s: %w", peerID, err)
		}
		if d.Node == d.From && onLeave != nil {
			onLeave(d.Node)
		}
	case msgHasCrc:
		if len(buf) < 5 {
			return fmt.Errorf("truncated checksummed message from %s", peerID)
		}
		return checkMessage(buf[5:], peerID, onLeave, depth)
	case msgCompound:
		if depth >= maxCompoundDepth {
			return fmt.Errorf("compound message from %s nests too deeply", peerID)
		}
		parts, err := splitCompound(buf[1:])
		if err != nil {
			return fmt.Errorf("malformed compound message from %s: %w", peerID, err)
		}
		for _, part := range parts {
			if err := checkMessage(part, peerID, onLeave, depth+1); err != nil {
				return err
			}
		}
	case msgCompress, msgEncrypt, msgHasLabel:
		return fmt.Errorf("message type %d from %s is not used over the TLS transport", buf[0], peerID)
	default:
		if buf[0] > msgErr {
			// memberlist would log and drop it; refusing it ends the
			// connection instead of one error line per junk packet.
			return fmt.Errorf("unknown message type %d from %s", buf[0], peerID)
		}
	}
	return nil
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
