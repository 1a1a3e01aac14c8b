package flowtmpl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Event is a triggering event as published on the event stream (Get
// Event shape), with the profile its producer put in included[].
type Event struct {
	ID        string
	MetricID  string // relationships.metric.data.id, "" if absent
	ProfileID string // relationships.profile.data.id, or the included profile's id
	Email     string // the profile's email, "" if none

	props    map[string]any
	datetime any
	uuid     any
	ts       any
	profile  map[string]any
}

// ErrEvent: the message is not an event this package can render.
var ErrEvent = errors.New("flowtmpl: not an event")

type wireEvent struct {
	Data struct {
		ID         string `json:"id"`
		Attributes struct {
			EventProperties map[string]any `json:"event_properties"`
			Datetime        any            `json:"datetime"`
			UUID            any            `json:"uuid"`
			Timestamp       any            `json:"timestamp"`
		} `json:"attributes"`
		Relationships struct {
			Metric  struct{ Data struct{ ID string } } `json:"metric"`
			Profile struct{ Data struct{ ID string } } `json:"profile"`
		} `json:"relationships"`
	} `json:"data"`
	Included []struct {
		Type       string         `json:"type"`
		ID         string         `json:"id"`
		Attributes map[string]any `json:"attributes"`
	} `json:"included"`
}

// ParseEvent reads an event message. Numbers keep their form: integers
// become int, other numbers float64.
func ParseEvent(body []byte) (*Event, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var w wireEvent
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvent, err)
	}
	a := w.Data.Attributes
	ev := &Event{
		ID:       w.Data.ID,
		MetricID: w.Data.Relationships.Metric.Data.ID,
		props:    numbers(a.EventProperties).(map[string]any),
		datetime: a.Datetime, uuid: a.UUID, ts: numbers(a.Timestamp),
	}
	if ev.props == nil {
		ev.props = map[string]any{}
	}
	want := w.Data.Relationships.Profile.Data.ID
	for _, inc := range w.Included {
		if inc.Type != "profile" || (want != "" && inc.ID != want) {
			continue
		}
		ev.ProfileID = inc.ID
		ev.profile = profileContext(inc.ID, numbers(inc.Attributes).(map[string]any))
		if e, ok := ev.profile["email"].(string); ok {
			ev.Email = e
		}
		break
	}
	if ev.ProfileID == "" {
		ev.ProfileID = want
	}
	return ev, nil
}

// profileContext flattens a profile: its attributes, then its custom
// properties (which never hide an attribute), then its id.
func profileContext(id string, attrs map[string]any) map[string]any {
	p := make(map[string]any, len(attrs)+4)
	props, _ := attrs["properties"].(map[string]any)
	for k, v := range props {
		p[k] = v
	}
	for k, v := range attrs {
		if k != "properties" {
			p[k] = v
		}
	}
	p["id"] = id
	return p
}

// Organization is the per-account organization context.
type Organization struct {
	Name string
	URL  string
}

// Context is the render data of ev: event (its event_properties, plus
// id, datetime, uuid and timestamp, which win over properties of those
// names), person (the profile: attributes, properties, id; empty when
// the event included none) and organization (name, url).
func (ev *Event) Context(org Organization) map[string]any {
	e := make(map[string]any, len(ev.props)+4)
	for k, v := range ev.props {
		e[k] = v
	}
	e["id"], e["datetime"], e["uuid"], e["timestamp"] = ev.ID, ev.datetime, ev.uuid, ev.ts
	person := ev.profile
	if person == nil {
		person = map[string]any{}
	}
	return map[string]any{
		"event":        e,
		"person":       person,
		"organization": map[string]any{"name": org.Name, "url": org.URL},
	}
}

// numbers replaces every json.Number in v: integers that fit become int,
// the rest float64.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		s := x.String()
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return int(i)
			}
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	case nil:
		return nil
	}
	return v
}

// RenderJSON renders t with data and checks that the output is one JSON
// value; an invalid output is an *Error of kind ErrNotJSON saying where.
func (t *Template) RenderJSON(data map[string]any) ([]byte, error) {
	out, err := t.Render(data)
	if err != nil {
		return nil, err
	}
	if err := checkJSON(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkJSON(out []byte) error {
	var v any
	err := json.Unmarshal(out, &v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	msg := "the rendered body is not valid JSON"
	if errors.As(err, &se) {
		line := 1 + bytes.Count(out[:min(int(se.Offset), len(out))], []byte("\n"))
		msg = fmt.Sprintf("the rendered body is not valid JSON at line %d of the output: %s", line, se.Error())
		return &Error{Kind: ErrNotJSON, Line: 0, Msg: msg}
	}
	return &Error{Kind: ErrNotJSON, Msg: msg}
}
