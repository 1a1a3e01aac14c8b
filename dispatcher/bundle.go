package dispatcher

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry bundles (partitioned consumption). A webhook's events move to its
// retry subject in bundles: one retry-stream message carrying the events
// of one batch (at most BatchMaxEvents, and at most 7/8 of the server's
// max_payload), not one copy per event. A copy per event cost nats-server
// a store, a deduplication entry, a PubAck and later a delete per event, on
// the cores the healthy webhooks of the same partition need (the scale
// bench's dead neighbour: 20–46 % slower next to a refusing webhook than
// next to a delivering one). A bundle costs that once per batch.
//
// A bundle is delivered by the webhook's retry runner as the events it
// carries (bundlePart). It is acknowledged once all of them are settled:
// every one delivered or set aside, or handed back together (NakWithDelay:
// the retry consumer's backoff, as for single copies). When only some are
// handed back (a batch split by the poison search, a lease lost between
// two requests), those are republished as a new bundle and the old one is
// acknowledged after the PubAck; if that fails the old bundle comes again
// whole, so a part already delivered may be delivered twice, never lost.
//
// The subject is webhookd.retry.<webhook id>.<n>, n the events it holds,
// so the retry stream's per-subject counts give a webhook's backlog in
// events without reading the bundles. Single copies (webhookd.retry.<id>,
// written before bundles) are still read.

// headerBundle marks a bundle; its value is the format version.
const headerBundle = "Webhookd-Bundle"

const bundleFormat = "1"

// headerNotBefore on a split-off bundle is when its events may be sent
// again (unix ns): the backoff they were handed back with, which a new
// message cannot carry the way NakWithDelay does for an old one. The
// retry runner hands a bundle fetched earlier back until then.
const headerNotBefore = "Webhookd-Not-Before"

// notBefore is when retry message m may be delivered (zero: now).
func notBefore(m jetstream.Msg) time.Time {
	ns, err := strconv.ParseInt(m.Headers().Get(headerNotBefore), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// bundleSubject is the retry subject of a bundle of n events for webhook id.
func bundleSubject(id string, n int) string { return retrySubject(id) + "." + strconv.Itoa(n) }

// bundleEvents is how many events a message on retry subject holds: the
// count a bundle's subject ends with, else one (a single copy).
func bundleEvents(subject string) int64 {
	i := strings.LastIndexByte(subject, '.')
	if n, err := strconv.ParseInt(subject[i+1:], 10, 64); err == nil && n > 0 && strings.Count(subject, ".") == 3 {
		return n
	}
	return 1
}

// retryFilters are the subjects of webhook id's retry consumer: its
// bundles and its single copies.
func retryFilters(id string) []string { return []string{retrySubject(id), retrySubject(id) + ".*"} }

// bundled is one event of a bundle.
type bundled struct {
	subject  string // as published
	storedAt int64  // unix ns, when the event stream stored it
	tries    uint64 // requests that carried it before this bundle
	header   nats.Header
	data     []byte
}

// appendBundled appends e's encoding: subject, stored-at, tries, the
// header's key/value pairs and the data, each length-prefixed.
func appendBundled(b []byte, e bundled) []byte {
	b = appendBytes(b, []byte(e.subject))
	b = binary.AppendVarint(b, e.storedAt)
	b = binary.AppendUvarint(b, e.tries)
	pairs := 0
	for _, vs := range e.header {
		pairs += len(vs)
	}
	b = binary.AppendUvarint(b, uint64(pairs))
	for k, vs := range e.header {
		for _, v := range vs {
			b = appendBytes(b, []byte(k))
			b = appendBytes(b, []byte(v))
		}
	}
	return appendBytes(b, e.data)
}

// bundledSize is at least the length of e's encoding (appendBundled):
// every length and number counted at its longest varint.
func bundledSize(e bundled) int {
	const num = binary.MaxVarintLen64
	n := 4*num + len(e.subject) + len(e.data)
	for k, vs := range e.header {
		for _, v := range vs {
			n += 2*num + len(k) + len(v)
		}
	}
	return n
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

var errBadBundle = errors.New("dispatcher: malformed retry bundle")

// decodeBundle is the events of a bundle's data. Their data and strings
// alias data.
func decodeBundle(data []byte) ([]bundled, error) {
	var out []bundled
	r := bundleReader{b: data}
	for len(r.b) > 0 && r.err == nil {
		var e bundled
		e.subject = string(r.bytes())
		e.storedAt = r.varint()
		e.tries = r.uvarint()
		pairs := r.uvarint()
		if pairs > uint64(len(r.b)) {
			return nil, errBadBundle
		}
		for range pairs {
			k, v := r.bytes(), r.bytes()
			if r.err != nil {
				break
			}
			if e.header == nil {
				e.header = nats.Header{}
			}
			e.header[string(k)] = append(e.header[string(k)], string(v))
		}
		e.data = r.bytes()
		out = append(out, e)
	}
	if r.err != nil || len(out) == 0 {
		return nil, errBadBundle
	}
	return out, nil
}

type bundleReader struct {
	b   []byte
	err error
}

func (r *bundleReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errBadBundle, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint reads binary.AppendVarint's zig-zag encoding.
func (r *bundleReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *bundleReader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err, r.b = errBadBundle, nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// shareBundled is what a bundle keeps of share s.
func shareBundled(s *share) bundled {
	e := bundled{subject: s.Subject(), data: s.Data()}
	if s.tried.Load() {
		e.tries = 1
	}
	if md, err := s.Metadata(); err == nil {
		e.storedAt = md.Timestamp.UnixNano()
	}
	// The event's own headers, without the instructions to the event
	// stream (copyHeaders) or ours; the producer's message id is kept: it
	// is the event's external_id when its data has no id.
	h := s.Headers()
	e.header = nats.Header{}
	copyHeaders(e.header, h)
	for _, k := range []string{headerOrigin, headerStoredAt, headerTries, headerBundle} {
		e.header.Del(k)
	}
	if id := h.Get(jetstream.MsgIDHeader); id != "" {
		e.header.Set(jetstream.MsgIDHeader, id)
	}
	return e
}

// bundleMsg builds the retry-stream message of events for webhook id. Its
// Nats-Msg-Id names the events it holds, so the same bundle published
// twice (a PubAck lost) is stored once.
func bundleMsg(id string, evs []bundled, keys []string) *nats.Msg {
	m := nats.NewMsg(bundleSubject(id, len(evs)))
	size := 0
	for _, e := range evs {
		size += len(e.data) + len(e.subject) + 32
	}
	m.Data = make([]byte, 0, size)
	h := fnv.New64a()
	for i, e := range evs {
		m.Data = appendBundled(m.Data, e)
		_, _ = h.Write([]byte(keys[i]))
		_, _ = h.Write([]byte{0})
	}
	m.Header.Set(headerBundle, bundleFormat)
	m.Header.Set(jetstream.MsgIDHeader, "b:"+id+":"+strconv.Itoa(len(evs))+":"+strconv.FormatUint(h.Sum64(), 16))
	return m
}

// shareKey identifies s's event for a bundle's Nats-Msg-Id.
func shareKey(s *share) string {
	if md, err := s.Metadata(); err == nil {
		// The store time too: sequences restart when the event stream is
		// recreated, and a new event at a reused sequence is another event.
		return md.Stream + ":" + strconv.FormatUint(md.Sequence.Stream, 10) + ":" +
			strconv.FormatInt(md.Timestamp.UnixNano(), 10)
	}
	return s.Subject() + ":" + string(s.Data())
}

// bundle is a fetched bundle on its way through a retry runner.
type bundle struct {
	msg   jetstream.Msg
	md    *jetstream.MsgMetadata
	rt    *republisher
	parts []bundlePart

	mu       sync.Mutex
	left     int
	naked    []int         // parts handed back
	delay    time.Duration // the longest delay asked for
	progress time.Time     // last InProgress sent
}

// republisher publishes a bundle's handed-back remainder.
type republisher struct {
	js      jetstream.JetStream
	webhook string
}

// expandBundle returns the events of retry message m: a bundle's parts, or
// m itself (a single copy, or a bundle that cannot be read: its data then
// goes to the courier as one event, which sets it aside as malformed).
func expandBundle(js jetstream.JetStream, webhook string, m jetstream.Msg, out []jetstream.Msg) []jetstream.Msg {
	if m.Headers().Get(headerBundle) == "" {
		return append(out, retryMsg{m})
	}
	evs, err := decodeBundle(m.Data())
	if err != nil {
		return append(out, retryMsg{m})
	}
	b := &bundle{msg: m, rt: &republisher{js: js, webhook: webhook}, left: len(evs)}
	if md, err := m.Metadata(); err == nil {
		b.md = md
	}
	b.parts = make([]bundlePart, len(evs))
	for i, e := range evs {
		b.parts[i] = bundlePart{b: b, i: i, e: e}
		out = append(out, &b.parts[i])
	}
	return out
}

// settle records part i's outcome: handed back (nak, after delay) or not.
func (b *bundle) settle(i int, nak bool, delay time.Duration) {
	b.mu.Lock()
	b.left--
	if nak {
		b.naked = append(b.naked, i)
		b.delay = max(b.delay, delay)
	}
	done := b.left == 0
	b.mu.Unlock()
	if !done {
		return
	}
	switch {
	case len(b.naked) == 0:
		_ = b.msg.Ack()
	case len(b.naked) == len(b.parts):
		if b.delay > 0 {
			_ = b.msg.NakWithDelay(b.delay)
		} else {
			_ = b.msg.Nak()
		}
	default:
		b.splitOff()
	}
}

// splitOff republishes the handed-back parts as a new bundle and
// acknowledges this one once it is stored; if it cannot, this one comes
// again whole after the delay.
func (b *bundle) splitOff() {
	evs := make([]bundled, len(b.naked))
	keys := make([]string, len(b.naked))
	for j, i := range b.naked {
		p := &b.parts[i]
		evs[j] = p.e
		evs[j].tries = p.priorTries() + deliveryCount(b.msg)
		keys[j] = strconv.FormatInt(p.e.storedAt, 10) + ":" + p.e.subject + ":" + strconv.Itoa(i)
	}
	m := bundleMsg(b.rt.webhook, evs, keys)
	m.Header.Set(jetstream.MsgIDHeader, m.Header.Get(jetstream.MsgIDHeader)+":"+b.msg.Reply())
	if b.delay > 0 {
		m.Header.Set(headerNotBefore, strconv.FormatInt(time.Now().Add(b.delay).UnixNano(), 10))
	}
	ctx, cancel := context.WithTimeout(context.Background(), divertTimeout)
	defer cancel()
	if _, err := b.rt.js.PublishMsg(ctx, m); err != nil {
		_ = b.msg.NakWithDelay(max(b.delay, time.Second))
		return
	}
	_ = b.msg.Ack()
}

// inProgress resets the bundle's AckWait, at most once a second however
// many of its parts ask.
func (b *bundle) inProgress() error {
	b.mu.Lock()
	if time.Since(b.progress) < time.Second {
		b.mu.Unlock()
		return nil
	}
	b.progress = time.Now()
	b.mu.Unlock()
	return b.msg.InProgress()
}

// bundlePart is one event of a bundle, seen as the message it was.
type bundlePart struct {
	b    *bundle
	i    int
	e    bundled
	once sync.Once
	hdr  nats.Header
}

var _ jetstream.Msg = (*bundlePart)(nil)

func (p *bundlePart) Data() []byte    { return p.e.data }
func (p *bundlePart) Subject() string { return p.e.subject }
func (p *bundlePart) Reply() string   { return "" }

// Headers are the producer's headers of the event (Nats-Msg-Id included).
func (p *bundlePart) Headers() nats.Header {
	if p.hdr == nil {
		p.hdr = nats.Header{}
		for k, vs := range p.e.header {
			p.hdr[k] = vs
		}
	}
	return p.hdr
}

// Metadata is the bundle's, with the event's own stored time.
func (p *bundlePart) Metadata() (*jetstream.MsgMetadata, error) {
	if p.b.md == nil {
		return p.b.msg.Metadata()
	}
	md := *p.b.md
	md.Timestamp = time.Unix(0, p.e.storedAt)
	return &md, nil
}

// priorTries is how many requests carried the event before this bundle.
func (p *bundlePart) priorTries() uint64 { return p.e.tries }

// storedAt is when the event stream stored the event.
func (p *bundlePart) storedAt() time.Time { return time.Unix(0, p.e.storedAt) }

func (p *bundlePart) finish(nak bool, delay time.Duration) {
	p.once.Do(func() { p.b.settle(p.i, nak, delay) })
}

func (p *bundlePart) Ack() error                         { p.finish(false, 0); return nil }
func (p *bundlePart) DoubleAck(context.Context) error    { return p.Ack() }
func (p *bundlePart) Term() error                        { return p.Ack() }
func (p *bundlePart) TermWithReason(string) error        { return p.Ack() }
func (p *bundlePart) Nak() error                         { p.finish(true, 0); return nil }
func (p *bundlePart) NakWithDelay(d time.Duration) error { p.finish(true, d); return nil }
func (p *bundlePart) InProgress() error                  { return p.b.inProgress() }
