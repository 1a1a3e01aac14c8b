package batcher

import (
	"errors"

	"github.com/webhookd/webhookd/batcher/jsonscan"
)

// Parse validates an event message body and returns its external id. The
// body must be a JSON object that common receivers' parsers accept once
// it is embedded in an envelope: UTF-8, nested at most [MaxDepth] deep,
// with every number within the range of a double. It is then safe to
// embed unchanged as Event.Payload. Otherwise Parse returns
// [ErrNotJSON], [ErrNotUTF8], [ErrTooDeep], [ErrNumberRange] or
// [ErrNotObject]; of several faults it reports the first in the body,
// and ErrNotObject only for a body free of the others.
//
// The id is data.id when that is a non-empty JSON string, and msgID (the
// Nats-Msg-Id header) otherwise; with neither, Parse returns [ErrNoID].
// Keys match exactly and, as with encoding/json maps, the last of duplicate
// keys wins.
//
// Parse runs on every event, so it validates and finds data.id in one
// pass (scan), without decoding anything but the id.
func Parse(body []byte, msgID string) (string, error) {
	obj, idAt, idEnd, err := scan(body)
	switch {
	case err != nil:
		return "", fromScan(err)
	case !obj:
		return "", ErrNotObject
	}
	if idAt >= 0 {
		if id := jsonscan.Unquote(body[idAt:idEnd]); len(id) > 0 {
			return string(id), nil
		}
	}
	if msgID != "" {
		return msgID, nil
	}
	return "", ErrNoID
}

// fromScan translates a jsonscan error into this package's.
func fromScan(err error) error {
	switch {
	case errors.Is(err, jsonscan.ErrUTF8):
		return ErrNotUTF8
	case errors.Is(err, jsonscan.ErrDepth):
		return ErrTooDeep
	case errors.Is(err, jsonscan.ErrRange):
		return ErrNumberRange
	}
	return ErrNotJSON
}
