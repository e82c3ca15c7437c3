package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Event kinds sent to a Notifier.
const (
	EventSealed         = "sealed"
	EventUnsealed       = "unsealed"
	EventCannotUnseal   = "cannot_unseal"
	EventNotInitialized = "not_initialized"
)

// Event is one notification. It never carries share material.
type Event struct {
	Kind   string    `json:"event"`
	Node   string    `json:"node"`
	Detail string    `json:"detail,omitempty"`
	Time   time.Time `json:"time"`
}

// Notifier receives events. Notify must not block the watcher.
type Notifier interface{ Notify(Event) }

type nopNotifier struct{}

func (nopNotifier) Notify(Event) {}

// Webhook posts events as JSON to a URL, in the background, with a bounded
// queue and timeout: a slow receiver never slows an unseal.
type Webhook struct {
	url    string
	client *http.Client
	queue  chan Event
	log    *slog.Logger
}

// NewWebhook starts a webhook sender until ctx is done.
func NewWebhook(ctx context.Context, url string, log *slog.Logger) *Webhook {
	w := &Webhook{url: url, client: &http.Client{Timeout: 5 * time.Second}, queue: make(chan Event, 64), log: log}
	go w.loop(ctx)
	return w
}

// Notify queues e, dropping it (with a warning) if the queue is full.
func (w *Webhook) Notify(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	select {
	case w.queue <- e:
	default:
		w.log.Warn("webhook queue full; event dropped", "event", e.Kind, "node", e.Node)
	}
}

func (w *Webhook) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-w.queue:
			b, _ := json.Marshal(e)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(b))
			if err != nil {
				w.log.Warn("webhook request", "err", err)
				continue
			}
			req.Header.Set("Content-Type", "application/json")
			resp, err := w.client.Do(req)
			if err != nil {
				w.log.Warn("webhook failed", "url", w.url, "event", e.Kind, "err", err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode >= 300 {
				w.log.Warn("webhook refused", "url", w.url, "event", e.Kind, "status", resp.StatusCode)
			}
		}
	}
}
