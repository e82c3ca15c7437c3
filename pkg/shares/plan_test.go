package shares

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/hashicorp/vault/shamir"
)

func TestPlanValidate(t *testing.T) {
	type tc struct {
		name string
		plan Plan
		err  error // nil for ok; ErrUnsafePlan where the plan is unsafe
		bad  bool  // any error
	}
	holders := func(counts ...int) []Allotment {
		var out []Allotment
		for i, c := range counts {
			out = append(out, Allotment{Holder: string(rune('a' + i)), Count: c})
		}
		return out
	}
	run := func(t *testing.T, tc tc) {
		err := tc.plan.Validate()
		switch {
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Fatalf("err = %v, want %v", err, tc.err)
		case tc.bad && err == nil:
			t.Fatal("invalid plan accepted")
		case !tc.bad && tc.err == nil && err != nil:
			t.Fatalf("valid plan refused: %v", err)
		}
	}
	for _, c := range []tc{
		{name: "ok/default", plan: DefaultPlan([3]string{"a", "b", "c"})},
		{name: "ok/3-of-5-even", plan: Plan{Shares: 5, Threshold: 3, Holders: holders(1, 1, 1, 1, 1)}},
		{name: "ok/fragile-allowed", plan: Plan{Shares: 4, Threshold: 3, Holders: holders(2, 1, 1), AllowFragile: true}},
		{name: "fail/single-holder-reaches-t", plan: Plan{Shares: 5, Threshold: 3, Holders: holders(3, 1, 1)}, err: ErrUnsafePlan},
		{name: "fail/single-reaches-t-even-if-fragile-allowed", plan: Plan{Shares: 5, Threshold: 3, Holders: holders(3, 2), AllowFragile: true}, err: ErrUnsafePlan},
		{name: "fail/fragile", plan: Plan{Shares: 4, Threshold: 3, Holders: holders(2, 1, 1)}, err: ErrUnsafePlan},
		{name: "fail/sum-mismatch", plan: Plan{Shares: 5, Threshold: 3, Holders: holders(2, 2, 2)}, bad: true},
		{name: "fail/threshold-1", plan: Plan{Shares: 3, Threshold: 1, Holders: holders(1, 1, 1)}, bad: true},
		{name: "fail/shares-below-t", plan: Plan{Shares: 2, Threshold: 3, Holders: holders(1, 1)}, bad: true},
		{name: "fail/one-holder", plan: Plan{Shares: 3, Threshold: 2, Holders: holders(3)}, bad: true},
		{name: "fail/duplicate-holder", plan: Plan{Shares: 4, Threshold: 3, Holders: []Allotment{{"a", 2}, {"a", 2}}}, bad: true},
		{name: "fail/zero-count", plan: Plan{Shares: 5, Threshold: 3, Holders: holders(2, 2, 1, 0)}, bad: true},
	} {
		t.Run(c.name, func(t *testing.T) { run(t, c) })
	}
}

func TestDefaultPlanProperties(t *testing.T) {
	p := DefaultPlan([3]string{"a", "b", "c"})
	got := p.Properties()
	want := Properties{
		MaxSingle:         2,
		MinimalCoalitions: [][]string{{"a", "b"}, {"a", "c"}, {"b", "c"}},
		ToleratedFailures: 1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("properties = %+v, want %+v", got, want)
	}
	idx := p.Indices()
	if !reflect.DeepEqual(idx, map[string][]uint8{"a": {1, 2}, "b": {3, 4}, "c": {5}}) {
		t.Fatalf("indices = %v", idx)
	}
}

// TestEverySubset combines every subset of a 2/2/1 deal: each 3-of-5 subset
// gives the secret, no single holder's shares do, and every pair of holders
// does.
func TestEverySubset(t *testing.T) {
	secret, all := split(t)
	combine := func(ss []Share) ([]byte, error) {
		parts := make([][]byte, len(ss))
		for i, s := range ss {
			parts[i] = s.Value
		}
		return shamir.Combine(parts)
	}
	n := 0
	forEachSubset(5, 3, func(idx []int) bool {
		n++
		ss := []Share{all[idx[0]], all[idx[1]], all[idx[2]]}
		got, err := combine(ss)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("subset %v does not combine to the secret (err %v)", idx, err)
		}
		return true
	})
	if n != 10 {
		t.Fatalf("visited %d subsets, want 10", n)
	}

	p := DefaultPlan([3]string{"a", "b", "c"})
	byHolder := map[string][]Share{}
	for h, idx := range p.Indices() {
		for _, i := range idx {
			byHolder[h] = append(byHolder[h], all[i-1])
		}
	}
	for h, ss := range byHolder {
		got, err := combine(ss)
		if err == nil && bytes.Equal(got, secret) {
			t.Errorf("holder %s alone reconstructs the secret", h)
		}
	}
	for _, pair := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "c"}} {
		ss := append(append([]Share{}, byHolder[pair[0]]...), byHolder[pair[1]]...)
		got, err := combine(ss)
		if err != nil || !bytes.Equal(got, secret) {
			t.Errorf("holders %v together do not reconstruct the secret (err %v)", pair, err)
		}
	}
}
