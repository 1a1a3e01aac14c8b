package activity

import (
	"encoding/json"
	"time"
)

// wire is an Attempt as stored: JSON with short keys and integer times
// (microseconds since the Unix epoch), about half the size of the API's
// rendering before compression. JSON rather than a binary format: it is
// cheap enough on the writer's goroutine (off the hot path), readable
// with `nats stream get`, and tolerant of fields added later.
type wire struct {
	ID       string   `json:"id"`
	Account  string   `json:"a"`
	Webhook  string   `json:"w"`
	Flow     string   `json:"f,omitempty"`
	Profile  string   `json:"p,omitempty"`
	Started  int64    `json:"t"`
	Duration int64    `json:"d"`
	Trigger  Trigger  `json:"g"`
	Outcome  Outcome  `json:"o"`
	Status   int      `json:"s,omitempty"`
	Class    string   `json:"c,omitempty"`
	Error    string   `json:"e,omitempty"`
	Excerpt  string   `json:"x,omitempty"`
	Events   int      `json:"n"`
	Bytes    int      `json:"b"`
	Attempt  int      `json:"k"`
	NextAt   int64    `json:"r,omitempty"`
	External []string `json:"i,omitempty"`
	// Added later: records without them read as zero values.
	Email     string `json:"m,omitempty"`
	First     int64  `json:"ft,omitempty"`
	Exhausted bool   `json:"z,omitempty"`
}

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// encode renders a for the stream.
func encode(a *Attempt) ([]byte, error) {
	return json.Marshal(wire{
		ID: a.ID, Account: a.AccountID, Webhook: a.WebhookID, Flow: a.FlowID, Profile: a.ProfileID,
		Started: micros(a.StartedAt), Duration: a.Duration.Microseconds(), Trigger: a.Trigger,
		Outcome: a.Outcome, Status: a.Status, Class: string(a.ErrorClass), Error: a.Error,
		Excerpt: a.ResponseExcerpt, Events: a.Events, Bytes: a.Bytes, Attempt: a.Attempt,
		NextAt: micros(a.NextAttemptAt), External: a.ExternalIDs,
		Email: a.Email, First: micros(a.FirstAt), Exhausted: a.Exhausted,
	})
}

// decode parses a stored attempt.
func decode(b []byte) (Attempt, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Attempt{}, err
	}
	return Attempt{
		ID: w.ID, AccountID: w.Account, WebhookID: w.Webhook, FlowID: w.Flow, ProfileID: w.Profile,
		StartedAt: fromMicros(w.Started), Duration: time.Duration(w.Duration) * time.Microsecond,
		Trigger: w.Trigger, Outcome: w.Outcome, Status: w.Status, ErrorClass: ErrorClass(w.Class),
		Error: w.Error, ResponseExcerpt: w.Excerpt, Events: w.Events, Bytes: w.Bytes, Attempt: w.Attempt,
		NextAttemptAt: fromMicros(w.NextAt), ExternalIDs: w.External,
		Email: w.Email, FirstAt: fromMicros(w.First), Exhausted: w.Exhausted,
	}, nil
}
