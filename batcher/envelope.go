package batcher

import (
	"time"
	"unicode/utf8"
)

// The fixed parts of an envelope, in the order they are written.
const (
	envStart     = `{"data":[`
	itemID       = `{"external_id":`
	itemTopic    = `,"topic":`
	itemPayload  = `,"payload":`
	itemEnd      = `}`
	metaAccount  = `],"meta":{"klaviyo_account_id":`
	metaWebhook  = `,"klaviyo_webhook_id":`
	metaTime     = `,"timestamp":`
	metaVersion  = `,"version":`
	envEnd       = `}}`
	itemFixed    = len(itemID) + len(itemTopic) + len(itemPayload) + len(itemEnd)
	envFixed     = len(envStart) + len(metaAccount) + len(metaWebhook) + len(metaTime) + len(metaVersion) + len(envEnd)
	timeLayout   = "2006-01-02T15:04:05.000000"
	timeUTC      = "+00:00"
	nullPayload  = "null"
	maxTimestamp = 64 // generous: a timestamp is 34 bytes quoted for years 0-9999
)

// AppendEnvelope appends the envelope of events and meta to dst and returns
// the extended slice; len of what it appends is exactly [Size](events, meta).
// Payloads are copied unchanged; ids, topics and meta strings are escaped as
// JSON strings. Callers reuse dst across requests (once a body has been
// sent) to avoid allocating.
func AppendEnvelope(dst []byte, events []Event, meta Meta) []byte {
	dst = grow(dst, events, meta)
	dst = append(dst, envStart...)
	for i, e := range events {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, itemID...)
		dst = appendString(dst, e.ExternalID)
		dst = append(dst, itemTopic...)
		dst = appendString(dst, e.Topic)
		dst = append(dst, itemPayload...)
		if len(e.Payload) == 0 {
			dst = append(dst, nullPayload...)
		} else {
			dst = append(dst, e.Payload...)
		}
		dst = append(dst, itemEnd...)
	}
	dst = append(dst, metaAccount...)
	dst = appendString(dst, meta.AccountID)
	dst = append(dst, metaWebhook...)
	dst = appendString(dst, meta.WebhookID)
	dst = append(dst, metaTime...)
	dst = appendTimestamp(dst, meta.Timestamp)
	dst = append(dst, metaVersion...)
	dst = appendString(dst, meta.Version)
	return append(dst, envEnd...)
}

// grow makes room for the envelope in one allocation. It uses an upper
// bound (every string byte escaped to six) rather than Size, which would
// scan every id and topic a second time.
func grow(dst []byte, events []Event, meta Meta) []byte {
	n := envFixed + maxTimestamp + 6*(len(meta.AccountID)+len(meta.WebhookID)+len(meta.Version)+6)
	for _, e := range events {
		n += 1 + itemFixed + len(nullPayload) + len(e.Payload) + 6*(len(e.ExternalID)+len(e.Topic)+4)
	}
	if cap(dst)-len(dst) >= n {
		return dst
	}
	grown := make([]byte, len(dst), len(dst)+n)
	copy(grown, dst)
	return grown
}

// appendTimestamp appends t as a quoted UTC time with microseconds and an
// explicit +00:00 offset, the form Klaviyo sends.
func appendTimestamp(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, timeUTC...)
	return append(dst, '"')
}

// timestampLen returns len(appendTimestamp(nil, t)) without allocating.
func timestampLen(t time.Time) int {
	var buf [maxTimestamp]byte
	return len(appendTimestamp(buf[:0], t))
}

// escLen holds the length each ASCII byte takes inside a JSON string:
// 1 for bytes written as is, 2 for the short escapes \" \\ \b \f \n \r \t,
// and 6 for the other control characters, written as \u00XX.
var escLen = func() (t [utf8.RuneSelf]uint8) {
	for b := range t {
		switch {
		case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
			t[b] = 2
		case b < 0x20:
			t[b] = 6
		default:
			t[b] = 1
		}
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. It escapes '"', '\\' and control
// characters, keeps valid UTF-8 (including <, >, & and U+2028) as is, and
// replaces each byte of invalid UTF-8 with \ufffd, as encoding/json does.
// strconv.Quote is not a substitute: its \x and \U escapes are not JSON.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if escLen[b] == 1 {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// stringLen returns len(appendString(nil, s)) without writing.
func stringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			n += int(escLen[b])
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += len(`\ufffd`)
		} else {
			n += size
		}
		i += size
	}
	return n
}
