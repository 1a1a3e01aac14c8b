package sink

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/signer"
)

// handleDelivery checks one delivery in order of cost: injected failure,
// body size, signature (a fixed cost per byte), then a single scan of the
// body that validates it as JSON and extracts only the envelope fields,
// the dedupe keys and published_ns.
func (s *Sink) handleDelivery(w http.ResponseWriter, r *http.Request) {
	s.stats.enter()
	defer s.stats.leave()
	if s.cfg.FailRate > 0 && rand.Float64() < s.cfg.FailRate {
		s.stats.count(&s.stats.injectedFailures)
		s.failOnPurpose(w, r)
		return
	}

	buf := s.bodies.Get().(*[]byte)
	d := s.scans.Get().(*deliveryScan)
	defer s.putScan(d)
	webhookID, arrived, ok := s.check(w, r, buf, d)
	s.putBody(buf) // before Delay: held requests keep only their keys
	if !ok {
		return
	}
	if s.cfg.Delay > 0 && !s.hold(r, s.cfg.Delay) {
		return // the sender gave up and will retry: not delivered
	}
	if dispatcher.Successful(s.cfg.Status) { // webhookd's own rule
		dups := s.stats.accept(webhookID, d, arrived)
		s.logBatch("batch accepted", webhookID, d, dups, arrived)
	} else {
		s.stats.count(&s.stats.rejected)
		s.logBatch("batch rejected (--status)", webhookID, d, 0, arrived)
	}
	w.WriteHeader(s.cfg.Status)
}

// logBatch writes the one line per verified batch: what was answered,
// how many events (and duplicates) it carried and, when the events carry
// their publish time (webhookd publish --generate), the largest
// publish-to-receive latency. Quiet turns it off.
func (s *Sink) logBatch(msg, webhookID string, d *deliveryScan, dups int, arrived time.Time) {
	if s.cfg.Quiet {
		return
	}
	ev := s.log.Info().Str("webhook_id", webhookID).Int("events", len(d.keys)).Int("status", s.cfg.Status)
	if dups > 0 {
		ev = ev.Int("duplicates", dups)
	}
	if len(d.published) > 0 {
		oldest := slices.Min(d.published)
		ev = ev.Int64("latency_ms", max(arrived.UnixNano()-oldest, 0)/int64(time.Millisecond))
	}
	ev.Msg(msg)
}

// check reads the body into buf, verifies its signature and scans it
// into d. A request it refuses it answers and counts itself, and returns
// false. arrived is when the body had been read.
func (s *Sink) check(w http.ResponseWriter, r *http.Request, buf *[]byte, d *deliveryScan) (webhookID string, arrived time.Time, ok bool) {
	webhookID = r.Header.Get(signer.HeaderWebhookID)
	var err error
	*buf, err = readBody(w, r, *buf, int64(s.cfg.MaxBody))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			s.refuse(w, &s.stats.malformed, http.StatusRequestEntityTooLarge, webhookID, "body over --max-body")
		}
		return "", arrived, false // otherwise the client went away mid-body: nobody to answer
	}
	body, arrived := *buf, time.Now()
	// Webhookd-Signature carries a digest per active secret while a
	// webhook's secret is rotated; Klaviyo-Signature only the primary's.
	sig := r.Header.Get(signer.HeaderSignatures)
	if sig == "" {
		sig = r.Header.Get(signer.HeaderSignature)
	}
	if s.secrets != nil && !s.secrets.verify(webhookID, r.Header.Get(signer.HeaderTimestamp), sig, body) {
		s.refuse(w, &s.stats.badSignatures, http.StatusUnauthorized, webhookID, "signature does not verify")
		return "", arrived, false
	}
	wh := s.stats.webhookHash(webhookID)
	if err := scanDelivery(body, d, func(id []byte) uint64 { return s.stats.dedupeKey(wh, id) }); err != nil {
		s.refuse(w, &s.stats.malformed, http.StatusBadRequest, webhookID, "malformed body: "+err.Error())
		return "", arrived, false
	}
	if webhookID == "" || string(d.webhookID) != webhookID {
		s.refuse(w, &s.stats.mismatches, http.StatusBadRequest, webhookID, "Klaviyo-Webhook-Id header differs from meta.klaviyo_webhook_id")
		return "", arrived, false
	}
	d.webhookID = nil // it points into body, which goes back to the pool
	return webhookID, arrived, true
}

// putBody and putScan return request memory to the pools, except
// outsized buffers, which are left to the garbage collector rather than
// pinned.
func (s *Sink) putBody(buf *[]byte) {
	if cap(*buf) <= maxPooledBody {
		s.bodies.Put(buf)
	}
}

func (s *Sink) putScan(d *deliveryScan) {
	if cap(d.keys) <= 1<<16 && cap(d.published) <= 1<<16 && cap(d.topics) <= 1<<10 {
		s.scans.Put(d)
	}
}

// refuse answers a request the sink will not accept, counts it in c and
// logs why, at most one line a second (see logLimiter) and never with
// Quiet. The reason never quotes the body.
func (s *Sink) refuse(w http.ResponseWriter, c *int64, status int, webhookID, why string) {
	s.stats.count(c)
	if !s.cfg.Quiet {
		if ok, suppressed := s.logLimit.allow(time.Now()); ok {
			ev := s.log.Warn().Str("webhook_id", webhookID).Int("status", status)
			if suppressed > 0 {
				ev = ev.Int("suppressed", suppressed) // lines left out since the last one
			}
			ev.Msg(why)
		}
	}
	http.Error(w, why, status)
}

// hold waits d, or until the client goes (false) or the sink stops.
func (s *Sink) hold(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopping:
		return true
	case <-r.Context().Done():
		return false
	}
}

// failOnPurpose fails a delivery the way FailMode says.
func (s *Sink) failOnPurpose(w http.ResponseWriter, r *http.Request) {
	mode := s.cfg.FailMode
	if mode == "mixed" {
		mode = FailModes[rand.IntN(3)]
	}
	switch mode {
	case "reset":
		if resetConnection(w) {
			return
		}
	case "timeout":
		// Read the body first: only then does net/http watch the
		// connection and cancel r's context when the sender gives up.
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBody)))
		if !s.hold(r, failTimeout) {
			return
		}
	default: // 5xx: read the body first so the connection can be reused
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBody)))
	}
	http.Error(w, "failure injected by --fail-rate", http.StatusServiceUnavailable)
}

// resetConnection takes the request's connection from the server and
// closes it with SO_LINGER 0, which sends a TCP RST: the sender sees
// "connection reset by peer" rather than a response.
func resetConnection(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
	return true
}

// readBody reads r's body into buf, reusing its capacity, up to limit
// bytes; a longer body returns an *http.MaxBytesError.
func readBody(w http.ResponseWriter, r *http.Request, buf []byte, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return buf[:0], &http.MaxBytesError{Limit: limit}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 {
		buf = slices.Grow(buf[:0], int(n))[:n]
		_, err := io.ReadFull(body, buf)
		return buf, err
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(len(buf), 64<<10))
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
