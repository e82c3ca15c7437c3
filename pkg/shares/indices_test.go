package shares

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestIndicesJSON(t *testing.T) {
	b, err := json.Marshal(struct{ I Indices }{Indices{1, 2, 5}})
	if err != nil || string(b) != `{"I":[1,2,5]}` {
		t.Fatalf("marshal = %s, %v", b, err)
	}
	var got Indices
	if err := json.Unmarshal([]byte(`[3,4]`), &got); err != nil || !reflect.DeepEqual(got, Indices{3, 4}) {
		t.Fatalf("unmarshal = %v, %v", got, err)
	}
	if err := json.Unmarshal([]byte(`[256]`), &got); err == nil {
		t.Fatal("index 256 accepted")
	}
	if b, _ := json.Marshal(Indices(nil)); string(b) != "[]" {
		t.Fatalf("nil marshals to %s", b)
	}
}
