package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/subscriptions/flows"
	"github.com/webhookd/webhookd/test/harness"
)

// The flows plug-in on a real store: an account sees its flows only,
// actions in chain order with their counts and masked headers; the
// operator sees every account's; another account's flow is not found.
func TestConsoleFlowPlug(t *testing.T) {
	ctx := context.Background()
	store := flows.NewStore(harness.StartRedis(t).Client(t))
	msg := func(name, url string) flows.Message {
		return flows.Message{Name: name, URL: url, Headers: map[string]string{"Authorization": "Bearer tok-0123456789"}, Body: `{}`}
	}
	// Stored second-first: the chain starts at the second action.
	mine, err := store.Create(ctx, flows.Flow{AccountID: "acct", Name: "orders", TriggerID: "Rk7x2Q", EntryID: "t2",
		Actions: []flows.Action{{Status: flows.StatusDisabled, Message: msg("second", "https://two.example/in?token=x")},
			{Status: flows.StatusLive, Next: "t1", Message: msg("first", "https://one.example:8443/hook")}}}, []string{"t1", "t2"})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := store.Create(ctx, flows.Flow{AccountID: "other", Name: "theirs", TriggerID: "M", EntryID: "t",
		Actions: []flows.Action{{Status: flows.StatusLive, Message: msg("x", "https://x.example/")}}}, []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	first := mine.Actions[1].ID
	for _, o := range []flows.Outcome{flows.Delivered, flows.WillRetry, flows.WillRetry, flows.RetrySkipped} {
		if err := store.Record(ctx, first, o); err != nil {
			t.Fatal(err)
		}
	}
	p := flowPlug{store: store, org: func(a string) flowtmpl.Organization { return flowtmpl.Organization{Name: "Org of " + a} }}

	list, err := p.Flows(ctx, "acct")
	if err != nil || len(list) != 1 {
		t.Fatalf("Flows(acct) = %+v, %v; want its one flow", list, err)
	}
	f := list[0]
	if f.ID != mine.ID || f.Account != "acct" || f.Name != "orders" || f.Status != flows.StatusDraft || f.Trigger != "Rk7x2Q" || len(f.Actions) != 2 {
		t.Fatalf("flow = %+v", f)
	}
	a := f.Actions[0]
	if a.ID != first || a.Name != "first" || a.Status != flows.StatusLive || a.Host() != "one.example:8443" {
		t.Errorf("first in the chain = %+v (host %q), want the entry action", a, a.Host())
	}
	if want := (console.FlowCounts{Delivered: 1, Skipped: 1, Waiting: 1, Attempts: 4, Failed: 3}); a.Counts != want {
		t.Errorf("counts = %+v, want %+v", a.Counts, want)
	}
	if len(a.Headers) != 1 || a.Headers[0] != (console.FlowHeader{Name: "Authorization", Masked: "Be********"}) {
		t.Errorf("headers = %+v, want the value masked", a.Headers)
	}
	if f.Actions[1].Name != "second" || f.Actions[1].Status != flows.StatusDisabled || f.Actions[1].Host() != "two.example" {
		t.Errorf("second in the chain = %+v", f.Actions[1])
	}

	all, err := p.Flows(ctx, "")
	if err != nil || len(all) != 2 {
		t.Errorf("Flows(operator) = %d flows, %v; want both accounts'", len(all), err)
	}
	if _, err := p.Flow(ctx, "acct", theirs.ID); !errors.Is(err, console.ErrFlowNotFound) {
		t.Errorf("Flow(another account's) = %v, want ErrFlowNotFound", err)
	}
	if _, err := p.Flow(ctx, "", "nope"); !errors.Is(err, console.ErrFlowNotFound) {
		t.Errorf("Flow(operator, unknown) = %v, want ErrFlowNotFound", err)
	}
	if got, err := p.Flow(ctx, "", theirs.ID); err != nil || got.Account != "other" {
		t.Errorf("Flow(operator, theirs) = %+v, %v", got, err)
	}
}

// The preview renders with the sandbox's sample event and the account's
// organization, and says what is wrong with its line, under the budgets
// a save checks.
func TestConsoleFlowPreview(t *testing.T) {
	ctx := context.Background()
	p := flowPlug{org: func(a string) flowtmpl.Organization { return flowtmpl.Organization{Name: "Org of " + a} }}
	pv, err := p.Preview(ctx, "acct", `{"email": "{{ person.email }}", "org": "{{ organization.name }}", "n": {{ event.Quantity }}}`)
	if err != nil || pv.Fault != "" {
		t.Fatalf("Preview = %+v, %v", pv, err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(pv.Output), &got); err != nil {
		t.Fatalf("output %q is not JSON: %v", pv.Output, err)
	}
	if got["email"] != "ada@example.com" || got["org"] != "Org of acct" || got["n"] != 2.0 {
		t.Errorf("output = %v, want the sample's email and quantity and the account's organization", got)
	}
	if !strings.Contains(pv.Output, "\n  ") || !strings.Contains(pv.Sample, `"OrderId": "1001"`) {
		t.Error("the output or the sample event is not indented JSON")
	}
	for _, tc := range []struct {
		body string
		line int
		want string
	}{
		{"{\n\"a\": 1,\n{% if %}\n}", 3, "it does not parse"},
		{strings.Repeat(" ", flowtmpl.DefaultMaxTemplateBytes+1), 0, "it exceeds a budget: the template is longer than 16384 bytes"},
		{`{"a": {{ event.Quantity }}`, 0, "the rendered body is not valid JSON"},
	} {
		pv, err := p.Preview(ctx, "acct", tc.body)
		if err != nil || !strings.HasPrefix(pv.Fault, tc.want) || pv.Line != tc.line || pv.Output != "" {
			t.Errorf("Preview(%.30q) = %+v, %v; want a fault %q on line %d", tc.body, pv, err, tc.want, tc.line)
		}
	}
}
