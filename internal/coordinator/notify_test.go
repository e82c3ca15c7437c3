package coordinator

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWebhookPostsEvents(t *testing.T) {
	got := make(chan Event, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil {
			t.Errorf("bad body: %v", err)
		}
		got <- e
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewWebhook(ctx, srv.URL, slog.New(slog.DiscardHandler))
	w.Notify(Event{Kind: EventCannotUnseal, Node: "vault-2", Detail: "1 of 3 shares reachable"})
	select {
	case e := <-got:
		if e.Kind != EventCannotUnseal || e.Node != "vault-2" || e.Detail != "1 of 3 shares reachable" || e.Time.IsZero() {
			t.Fatalf("event = %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("webhook never posted")
	}
}
