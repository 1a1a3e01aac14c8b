package sink

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
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

// maxJSONDepth bounds nesting, so a hostile body of a million '[' cannot
// grow the goroutine stack without limit (encoding/json allows 10,000).
const maxJSONDepth = 1000

// scanDelivery fills d from body, a delivery envelope (reference §7.2):
//
//	{"data":[{"external_id":"…","topic":"…","payload":{…}},…],"meta":{"klaviyo_webhook_id":"…",…}}
//
// keyOf turns an external_id into its dedupe key. It validates the whole
// body as JSON in one pass (like json.Valid, minus UTF-8 checks) but
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
			err = s.value(-1)
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

// jsonScanner walks a JSON text. Its methods start at the first byte of
// what they read and stop just past it; errors report the byte offset.
type jsonScanner struct {
	b     []byte
	i     int
	depth int
	pub   int64 // published_ns of the current event, if hasPub
	// hasPub is set by value when it meets publishedPath.
	hasPub bool
}

func (s *jsonScanner) fail(what string) error {
	return fmt.Errorf("byte %d: %s", s.i, what)
}

func (s *jsonScanner) ws() {
	if s.i < len(s.b) && s.b[s.i] > ' ' { // compact JSON: the usual case
		return
	}
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// open consumes c, the opening '{' or '[', and the white space after it,
// and reports whether end follows at once (and consumes it).
func (s *jsonScanner) open(c, end byte) (empty bool, err error) {
	if s.i >= len(s.b) || s.b[s.i] != c {
		return false, s.fail("want '" + string(c) + "'")
	}
	if s.depth++; s.depth > maxJSONDepth {
		return false, s.fail("nested too deeply")
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
	return false, s.fail("want ',' or '" + string(end) + "'")
}

// key reads an object member's name and the ':' after it.
func (s *jsonScanner) key() ([]byte, error) {
	k, err := s.stringValue()
	if err != nil {
		return nil, err
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		return nil, s.fail("want ':'")
	}
	s.i++
	s.ws()
	return k, nil
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
			err = s.value(-1)
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
			err = s.value(-1)
		}
		if err == nil {
			more, err = s.next('}')
		}
	}
	return err
}

// value skips one value. want is how much of publishedPath leads here
// (the index of the next name to match), or -1 when off that path.
func (s *jsonScanner) value(want int) error {
	if s.i >= len(s.b) {
		return s.fail("want a value")
	}
	switch s.b[s.i] {
	case '{':
		empty, err := s.open('{', '}')
		for more := !empty; more && err == nil; {
			var k []byte
			if k, err = s.key(); err != nil {
				break
			}
			switch {
			case want < 0 || string(k) != publishedPath[want]:
				err = s.value(-1)
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
	case '[':
		empty, err := s.open('[', ']')
		for more := !empty; more && err == nil; {
			if err = s.value(-1); err == nil {
				more, err = s.next(']')
			}
		}
		return err
	case '"':
		_, _, err := s.str()
		return err
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	_, err := s.number()
	return err
}

// publishedNS reads the value of published_ns; an integer is recorded,
// anything else skipped.
func (s *jsonScanner) publishedNS() error {
	if s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		raw, err := s.number()
		if err != nil {
			return err
		}
		if v, ok := parseDigits(raw); ok {
			s.pub, s.hasPub = v, true
		}
		return nil
	}
	return s.value(-1)
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

func (s *jsonScanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.fail("want a value")
	}
	s.i += len(lit)
	return nil
}

// number reads a number per RFC 8259 and returns its text.
func (s *jsonScanner) number() ([]byte, error) {
	b, start, i := s.b, s.i, s.i
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		s.i = i
		return nil, s.fail("want a value")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			s.i = i
			return nil, s.fail("want a digit")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.i = i
			return nil, s.fail("want a digit")
		}
	}
	s.i = i
	return b[start:i], nil
}

// stringValue reads a string and returns its contents, unescaped.
func (s *jsonScanner) stringValue() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, s.fail("want a string")
	}
	raw, esc, err := s.str()
	if err != nil || !esc {
		return raw, err
	}
	var v string // rare: let encoding/json apply the escapes
	if err := json.Unmarshal(s.b[s.i-len(raw)-2:s.i], &v); err != nil {
		return nil, s.fail("bad string")
	}
	return []byte(v), nil
}

// str reads the string at s.i, validating its escapes and rejecting
// control characters, and returns its raw contents and whether they hold
// escapes. Strings are most of a body's bytes, so it looks at eight bytes
// at a time (see strSpecial).
func (s *jsonScanner) str() (raw []byte, esc bool, err error) {
	b := s.b
	start := s.i + 1
	i := start
	for {
		if i+8 <= len(b) {
			m := strSpecial(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		}
		if i >= len(b) {
			s.i = i
			return nil, false, s.fail("unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], esc, nil
		case c == '\\':
			n := escapeLen(b[i:])
			if n == 0 {
				s.i = i
				return nil, false, s.fail("bad escape")
			}
			i += n
			esc = true
		case c < 0x20:
			s.i = i
			return nil, false, s.fail("control character in string")
		default: // only in the last seven bytes of the body
			i++
		}
	}
}

// strSpecial returns a mask with the high bit set in the lowest byte of
// w (little endian, so the first in memory) that is '"', '\\' or below
// 0x20, or 0 if there is none. It uses the haszero and hasless tricks of
// "Bit Twiddling Hacks": they may also flag bytes above a true hit (the
// subtraction borrows), never below one, so the lowest flag is exact.
func strSpecial(w uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, bs := w^(lo*'"'), w^(lo*'\\')
	return ((w-lo*0x20)&^w | (q-lo)&^q | (bs-lo)&^bs) & hi
}

// escapeLen returns the length of the escape sequence b starts with, or
// 0 if it is not one.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 {
			return 0
		}
		for _, c := range b[2:6] {
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return 0
			}
		}
		return 6
	}
	return 0
}
