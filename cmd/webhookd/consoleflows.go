package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

// flowPlug is the console's flows section on the flows store (with the
// counts delivery keeps) and the body templates' sandbox. The console
// reads the attempts of an action through the attempt log's plug-in,
// under the action's id.
type flowPlug struct {
	store *flows.Store
	// org is the organization account's templates render with, as in
	// delivery (--organization).
	org func(account string) flowtmpl.Organization
}

func (p flowPlug) Flows(ctx context.Context, account string) ([]console.Flow, error) {
	var fs []flows.Flow
	var err error
	if account == "" {
		fs, err = p.store.All(ctx)
	} else {
		fs, err = p.store.List(ctx, account)
	}
	if err != nil {
		return nil, err
	}
	out := make([]console.Flow, len(fs))
	for i, f := range fs {
		if out[i], err = p.consoleFlow(ctx, f); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (p flowPlug) Flow(ctx context.Context, account, id string) (console.Flow, error) {
	var f flows.Flow
	var err error
	if account == "" {
		f, err = p.store.Lookup(ctx, id)
	} else {
		f, err = p.store.Get(ctx, account, id)
	}
	if errors.Is(err, flows.ErrNotFound) {
		return console.Flow{}, console.ErrFlowNotFound
	}
	if err != nil {
		return console.Flow{}, err
	}
	return p.consoleFlow(ctx, f)
}

// consoleFlow is f with its actions in chain order and their counts.
func (p flowPlug) consoleFlow(ctx context.Context, f flows.Flow) (console.Flow, error) {
	cf := console.Flow{ID: f.ID, Account: f.AccountID, Name: f.Name, Status: f.Status, Trigger: f.TriggerID,
		Created: f.Created, Updated: f.Updated}
	for _, a := range chain(f) {
		n, err := p.store.Counts(ctx, a.ID)
		if err != nil {
			return console.Flow{}, err
		}
		ca := console.FlowAction{ID: a.ID, Name: a.Message.Name, Status: a.Status, URL: a.Message.URL,
			Body: a.Message.Body, Counts: console.FlowCounts{Delivered: n.Delivered, Skipped: n.Skipped,
				Waiting: n.Waiting, Attempts: n.Attempts, Failed: n.Failed}}
		for name, v := range a.Message.Headers {
			ca.Headers = append(ca.Headers, console.FlowHeader{Name: name, Masked: flows.Mask(v)})
		}
		slices.SortFunc(ca.Headers, func(x, y console.FlowHeader) int { return strings.Compare(x.Name, y.Name) })
		cf.Actions = append(cf.Actions, ca)
	}
	return cf, nil
}

// chain is f's actions from the entry action along their links; any the
// links miss (the API refuses such flows) follow in stored order.
func chain(f flows.Flow) []flows.Action {
	out := make([]flows.Action, 0, len(f.Actions))
	seen := map[string]bool{}
	for id := f.EntryID; id != "" && !seen[id]; {
		a, ok := f.Action(id)
		if !ok {
			break
		}
		seen[id] = true
		out = append(out, a)
		id = a.Next
	}
	for _, a := range f.Actions {
		if !seen[a.ID] {
			out = append(out, a)
		}
	}
	return out
}

// Preview renders body with the sample event under the default budgets,
// which a save checks too (api/flowparse.go), and account's organization.
func (p flowPlug) Preview(_ context.Context, account, body string) (console.FlowPreview, error) {
	pv := console.FlowPreview{Sample: indentJSON([]byte(flowtmpl.SampleEvent()))}
	out, err := flowtmpl.RenderSample(body, flowtmpl.Limits{}, p.org(account))
	var te *flowtmpl.Error
	switch {
	case errors.As(err, &te):
		pv.Fault, pv.Line = templateFault(te), te.Line
	case err != nil:
		return console.FlowPreview{}, err
	default:
		pv.Output = indentJSON(out)
	}
	return pv, nil
}

// templateFault says what kind of fault te is and what went wrong.
func templateFault(te *flowtmpl.Error) string {
	switch {
	case errors.Is(te, flowtmpl.ErrSyntax):
		return "it does not parse: " + te.Msg
	case errors.Is(te, flowtmpl.ErrBudget):
		return "it exceeds a budget: " + te.Msg
	case errors.Is(te, flowtmpl.ErrNotJSON):
		return "the rendered body is not valid JSON: " + te.Msg
	}
	return "it failed while rendering: " + te.Msg
}

// indentJSON is raw indented for reading; raw as it is when it is not
// JSON (never: the sandbox checks it).
func indentJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
