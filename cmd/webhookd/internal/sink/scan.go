package sink

import (
	"errors"
	"fmt"
	"math"

	"github.com/webhookd/webhookd/batcher/jsonscan"
)

// deliveryScan is what the sink takes from a delivery body. Its slices
// are reused across requests; webhookID may point into the body.
type deliveryScan struct {
	webhookID []byte       // meta.klaviyo_webhook_id
	keys      []uint64     // dedupe key of each event, in order
	published []int64      // published_ns of each event that carries one
	topics    []topicCount // events per topic
}

type topicCount struct {
	name string
	n    int64
}

func (d *deliveryScan) addTopic(t []byte) {
	for i := len(d.topics) - 1; i >= 0; i-- { // the latest topic is the likeliest
		if d.topics[i].name == string(t) {
			d.topics[i].n++
			return
		}
	}
	d.topics = append(d.topics, topicCount{name: string(t), n: 1})
}

// publishedPath is where `webhookd publish --generate` puts an event's
// creation time, in Unix nanoseconds, inside its payload.
var publishedPath = [...]string{"data", "attributes", "event_properties", "published_ns"}

// maxJSONDepth is the nesting limit, counted from the body's top: the
// one limit webhookd has (batcher refuses deeper events at intake, so no
// body it sends comes near it).
const maxJSONDepth = jsonscan.MaxDepth

// scanDelivery fills d from body, a delivery envelope (reference §7.2):
//
//	{"data":[{"external_id":"…","topic":"…","payload":{…}},…],"meta":{"klaviyo_webhook_id":"…",…}}
//
// keyOf turns an external_id into its dedupe key. It validates the whole
// body in one pass with jsonscan's rules (json.Valid's grammar, strings
// UTF-8, numbers within a double, nesting within jsonscan.MaxDepth) but
// decodes only those fields and payload.data.attributes.event_properties
// .published_ns; every other value, payloads included, is skipped. Member
// order is free; unknown members are allowed; data and meta may appear
// once each. Every event needs a string external_id and topic, and meta a
// string klaviyo_webhook_id.
func scanDelivery(body []byte, d *deliveryScan, keyOf func(externalID []byte) uint64) error {
	d.webhookID, d.keys, d.published, d.topics = nil, d.keys[:0], d.published[:0], d.topics[:0]
	s := jsonScanner{b: body}
	s.ws()
	empty, err := s.open('{', '}')
	if err != nil {
		return err
	}
	var haveData, haveMeta bool
	for more := !empty; more; {
		k, err := s.key()
		if err != nil {
			return err
		}
		switch string(k) {
		case "data":
			if haveData {
				return s.fail("second data member")
			}
			haveData = true
			err = s.items(d, keyOf)
		case "meta":
			if haveMeta {
				return s.fail("second meta member")
			}
			haveMeta = true
			err = s.meta(d)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
		if more, err = s.next('}'); err != nil {
			return err
		}
	}
	s.ws()
	switch {
	case s.i != len(s.b):
		return s.fail("data after the envelope")
	case !haveData:
		return errors.New("no data array")
	case d.webhookID == nil:
		return errors.New("no meta.klaviyo_webhook_id")
	}
	return nil
}

// jsonScanner walks a delivery envelope with jsonscan's primitives. Its
// methods start at the first byte of what they read and stop just past
// it; errors report the byte offset.
type jsonScanner struct {
	b     []byte
	i     int
	depth int   // open arrays and objects around b[i]
	pub   int64 // published_ns of the current event, if hasPub
	// hasPub is set by value when it meets publishedPath.
	hasPub bool
}

func (s *jsonScanner) fail(what string) error {
	return fmt.Errorf("byte %d: %s", s.i, what)
}

// failAt reports err, one of jsonscan's, at the offending byte.
func (s *jsonScanner) failAt(end int, err error) error {
	s.i = end
	if errors.Is(err, jsonscan.ErrDepth) {
		s.depth = maxJSONDepth + 1 // as open leaves it: past the limit
	}
	return fmt.Errorf("byte %d: %w", end, err)
}

func (s *jsonScanner) ws() { s.i = jsonscan.Space(s.b, s.i) }

// open consumes c, the opening '{' or '[', and the white space after it,
// and reports whether end follows at once (and consumes it).
func (s *jsonScanner) open(c, end byte) (empty bool, err error) {
	if s.i >= len(s.b) || s.b[s.i] != c {
		return false, s.failAt(s.i, jsonscan.ErrSyntax)
	}
	if s.depth++; s.depth > maxJSONDepth {
		return false, s.failAt(s.i, jsonscan.ErrDepth)
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == end {
		s.i++
		s.depth--
		return true, nil
	}
	return false, nil
}

// next consumes what follows a member or element: a ',' (reporting that
// another follows) or end, with the white space around them.
func (s *jsonScanner) next(end byte) (more bool, err error) {
	s.ws()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
			return true, nil
		case end:
			s.i++
			s.depth--
			return false, nil
		}
	}
	return false, s.failAt(s.i, jsonscan.ErrSyntax)
}

// key reads an object member's name, unescaped, and the ':' and white
// space after it.
func (s *jsonScanner) key() ([]byte, error) {
	nameEnd, v, err := jsonscan.Member(s.b, s.i)
	if err != nil {
		return nil, s.failAt(v, err)
	}
	k := jsonscan.Unquote(s.b[s.i:nameEnd])
	s.i = v
	return k, nil
}

// stringValue reads a string and returns its contents, unescaped.
func (s *jsonScanner) stringValue() ([]byte, error) {
	end, _, err := jsonscan.String(s.b, s.i)
	if err != nil {
		return nil, s.failAt(end, err)
	}
	v := jsonscan.Unquote(s.b[s.i:end])
	s.i = end
	return v, nil
}

// skip scans past one value, at the current depth.
func (s *jsonScanner) skip() error {
	end, err := jsonscan.Skip(s.b, s.i, s.depth)
	if err != nil {
		return s.failAt(end, err)
	}
	s.i = end
	return nil
}

// items reads the data array.
func (s *jsonScanner) items(d *deliveryScan, keyOf func([]byte) uint64) error {
	empty, err := s.open('[', ']')
	for more := !empty; more && err == nil; {
		if err = s.item(d, keyOf); err == nil {
			more, err = s.next(']')
		}
	}
	return err
}

// item reads one event of the data array.
func (s *jsonScanner) item(d *deliveryScan, keyOf func([]byte) uint64) error {
	empty, err := s.open('{', '}')
	if err != nil {
		return err
	}
	var id, topic []byte
	s.hasPub = false
	for more := !empty; more; {
		k, err := s.key()
		if err != nil {
			return err
		}
		switch string(k) {
		case "external_id":
			id, err = s.stringValue()
		case "topic":
			topic, err = s.stringValue()
		case "payload":
			err = s.value(0)
		default:
			err = s.skip()
		}
		if err != nil {
			return err
		}
		if more, err = s.next('}'); err != nil {
			return err
		}
	}
	if id == nil || topic == nil {
		return s.fail("event without external_id or topic")
	}
	d.keys = append(d.keys, keyOf(id))
	d.addTopic(topic)
	if s.hasPub {
		d.published = append(d.published, s.pub)
	}
	return nil
}

// meta reads the meta object.
func (s *jsonScanner) meta(d *deliveryScan) error {
	empty, err := s.open('{', '}')
	for more := !empty; more && err == nil; {
		var k []byte
		if k, err = s.key(); err != nil {
			break
		}
		if string(k) == "klaviyo_webhook_id" {
			d.webhookID, err = s.stringValue()
		} else {
			err = s.skip()
		}
		if err == nil {
			more, err = s.next('}')
		}
	}
	return err
}

// value scans one value. want is how much of publishedPath leads here
// (the index of the next name to match), or -1 when off that path. Only
// objects on the path are walked here; everything else is skipped whole.
func (s *jsonScanner) value(want int) error {
	if want < 0 || s.i >= len(s.b) || s.b[s.i] != '{' {
		return s.skip()
	}
	empty, err := s.open('{', '}')
	for more := !empty; more && err == nil; {
		var k []byte
		if k, err = s.key(); err != nil {
			break
		}
		switch {
		case string(k) != publishedPath[want]:
			err = s.skip()
		case want+1 == len(publishedPath):
			err = s.publishedNS()
		default:
			err = s.value(want + 1)
		}
		if err == nil {
			more, err = s.next('}')
		}
	}
	return err
}

// publishedNS reads the value of published_ns; an integer is recorded,
// anything else skipped.
func (s *jsonScanner) publishedNS() error {
	if s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		end, err := jsonscan.Number(s.b, s.i)
		if err != nil {
			return s.failAt(end, err)
		}
		if v, ok := parseDigits(s.b[s.i:end]); ok {
			s.pub, s.hasPub = v, true
		}
		s.i = end
		return nil
	}
	return s.skip()
}

// parseDigits parses a non-negative int64 written in decimal digits.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0') // 19 digits fit in a uint64
	}
	if v > math.MaxInt64 {
		return 0, false
	}
	return int64(v), true
}
