package main

import (
	"os/exec"
	"testing"
)

func TestDebVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2.3-rc.1", "1.2.3~rc.1"},
		{"v0.0.0-debtest", "0.0.0~debtest"},
		{"bda2f51", "0.0.0~git.bda2f51"},
		{"bda2f51-dirty", "0.0.0~git.bda2f51.dirty"},
		{"v1.2.3-4-gbda2f51", "1.2.3+git4.bda2f51"},
		{"v1.2.3-4-gbda2f51-dirty", "1.2.3+git4.bda2f51.dirty"},
		{"v1.2.3-rc.1-4-gbda2f51", "1.2.3~rc.1+git4.bda2f51"},
	} {
		got, err := DebVersion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ok/%s: DebVersion = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := DebVersion(" "); err == nil {
		t.Error("fail/empty: DebVersion accepted an empty version")
	}
}

// TestDebVersionOrder asks dpkg itself that the versions sort as releases do.
func TestDebVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not found")
	}
	order := []string{"bda2f51", "v1.2.3-rc.1", "v1.2.3-rc.1-4-gbda2f51", "v1.2.3", "v1.2.3-4-gbda2f51", "v1.2.4"}
	for i := 1; i < len(order); i++ {
		a, _ := DebVersion(order[i-1])
		b, _ := DebVersion(order[i])
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg does not sort %s (%s) before %s (%s)", a, order[i-1], b, order[i])
		}
	}
}
