package publish

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/webhookd/webhookd/cmd/webhookd/eventgen"
)

// maxLine bounds one NDJSON line. NATS refuses payloads above its
// max_payload (1 MiB by default) anyway; the larger buffer lets such a
// line reach the server and fail there, counted, instead of stopping the
// read.
const maxLine = 8 << 20

// MsgIDFrom values: where a Source takes an event's Nats-Msg-Id from.
const (
	MsgIDNone   = "none"    // no message id
	MsgIDDataID = "data.id" // the event's data.id
	MsgIDUUID   = "uuid"    // the event's data.attributes.uuid
)

// Generate returns a Source of count generated events of about size
// bytes (see eventgen), each created when it is taken.
func Generate(count, size int, msgIDFrom string) Source {
	g := eventgen.New(size)
	left := count
	return func() ([]byte, string, error) {
		if left == 0 {
			return nil, "", io.EOF
		}
		left--
		ev := g.Append(nil, time.Now())
		return ev.JSON, pickMsgID(msgIDFrom, ev.ID, ev.UUID), nil
	}
}

// Lines returns a Source of the non-empty lines of r, named name in
// errors. A line that is not JSON is published as it is (webhookd
// dead-letters it) unless strict, when it ends the run with an error.
func Lines(r io.Reader, name string, strict bool, msgIDFrom string) Source {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	return func() ([]byte, string, error) {
		for sc.Scan() {
			line++
			b := sc.Bytes()
			if len(bytes.TrimSpace(b)) == 0 {
				continue
			}
			data := append([]byte(nil), b...) // the scanner reuses its buffer
			var ev struct {
				Data struct {
					ID         string `json:"id"`
					Attributes struct {
						UUID string `json:"uuid"`
					} `json:"attributes"`
				} `json:"data"`
			}
			if err := json.Unmarshal(data, &ev); err != nil {
				if strict {
					return nil, "", fmt.Errorf("%s line %d: not valid JSON (--strict): %w", name, line, err)
				}
				return data, "", nil
			}
			return data, pickMsgID(msgIDFrom, ev.Data.ID, ev.Data.Attributes.UUID), nil
		}
		if err := sc.Err(); err != nil {
			return nil, "", fmt.Errorf("%s line %d: %w", name, line+1, err)
		}
		return nil, "", io.EOF
	}
}

func pickMsgID(from, id, uuid string) string {
	switch from {
	case MsgIDDataID:
		return id
	case MsgIDUUID:
		return uuid
	}
	return ""
}
