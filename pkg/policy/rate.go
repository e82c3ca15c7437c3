package policy

import "time"

// bucket is a token bucket: burst tokens, refilled at rate per minute.
type bucket struct {
	tokens float64
	last   time.Time
}

// take spends one token of the peer's bucket at time now.
func (e *Engine) take(kind, peer string, perMinute float64, burst int, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := kind + "|" + peer
	b := e.rates[key]
	if b == nil {
		if len(e.rates) > 10000 {
			e.pruneLocked(now, perMinute, burst)
		}
		b = &bucket{tokens: float64(burst), last: now}
		e.rates[key] = b
	}
	if now.After(b.last) {
		b.tokens = min(float64(burst), b.tokens+now.Sub(b.last).Minutes()*perMinute)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// pruneLocked drops buckets that have refilled completely.
func (e *Engine) pruneLocked(now time.Time, perMinute float64, burst int) {
	for k, b := range e.rates {
		if b.tokens+now.Sub(b.last).Minutes()*perMinute >= float64(burst) {
			delete(e.rates, k)
		}
	}
}
