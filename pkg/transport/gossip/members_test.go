package gossip

import "testing"

// TestEnumNames: each State and EventType prints its name, and a value
// outside the enum prints as unknown(n).
func TestEnumNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"ok/alive", StateAlive.String(), "alive"},
		{"ok/dead", StateDead.String(), "dead"},
		{"ok/left", StateLeft.String(), "left"},
		{"ok/join", EventJoin.String(), "join"},
		{"ok/leave", EventLeave.String(), "leave"},
		{"ok/failed", EventFailed.String(), "failed"},
		{"ok/update", EventUpdate.String(), "update"},
		{"fail/state-zero", State(0).String(), "unknown(0)"},
		{"fail/event-out-of-range", EventType(9).String(), "unknown(9)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Fatalf("String() = %q, want %q", tc.got, tc.want)
			}
		})
	}
}
