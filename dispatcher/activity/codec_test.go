package activity

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Every field survives the stored form.
func TestCodecRoundTrip(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := Attempt{ID: "01950000-0000-7000-8000-000000000001", AccountID: "acct", WebhookID: "act", FlowID: "fl",
		ProfileID: "p-1", Email: "ada@example.com", StartedAt: t0, Duration: 1500 * time.Microsecond,
		Trigger: TriggerRetry, Outcome: Failed, Status: 503, ErrorClass: ClassServer, Error: "HTTP 503",
		ResponseExcerpt: "busy", Events: 1, Bytes: 12, Attempt: 18, NextAttemptAt: t0.Add(time.Minute),
		ExternalIDs: []string{"ev-1"}, FirstAt: t0.Add(-time.Hour), Exhausted: true}
	b, err := encode(&a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(a, got); d != "" {
		t.Errorf("decode(encode(a)) differs (-want +got):\n%s", d)
	}
}

// A record written before Email, FirstAt and Exhausted existed still
// reads, with those fields zero.
func TestCodecReadsOldRecords(t *testing.T) {
	old := `{"id":"01950000-0000-7000-8000-000000000002","a":"acct","w":"act","f":"fl","p":"p-1","t":1772366400000000,` +
		`"d":1500,"g":"live","o":"delivered","s":200,"n":1,"b":12,"k":1,"i":["ev-1"]}`
	got, err := decode([]byte(old))
	if err != nil {
		t.Fatal(err)
	}
	want := Attempt{ID: "01950000-0000-7000-8000-000000000002", AccountID: "acct", WebhookID: "act", FlowID: "fl",
		ProfileID: "p-1", StartedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Duration: 1500 * time.Microsecond,
		Trigger: TriggerLive, Outcome: Delivered, Status: 200, Events: 1, Bytes: 12, Attempt: 1, ExternalIDs: []string{"ev-1"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("decode(old record) differs (-want +got):\n%s", d)
	}
}
