package console

import (
	"context"
	"net/http"
	"time"

	"github.com/webhookd/webhookd/subscriptions"
)

// FlowReader is the console's view of flow webhooks (issue 9): the
// flows with their send-webhook actions and counts, and the preview of
// a body template. cmd/webhookd adapts the flows store to it.
type FlowReader interface {
	// Flows lists account's flows; "" lists every account's (the
	// operator).
	Flows(ctx context.Context, account string) ([]Flow, error)
	// Flow returns flow id of account ("" = any account), or
	// ErrFlowNotFound: another account's flow is not found.
	Flow(ctx context.Context, account, id string) (Flow, error)
	// Preview renders body with the sample event as account's flows are
	// rendered, under the budgets a save checks. A template fault is in
	// the result; err is for anything else.
	Preview(ctx context.Context, account, body string) (FlowPreview, error)
}

// ErrFlowNotFound is FlowReader's answer for a flow the viewer may not
// see or that does not exist.
var ErrFlowNotFound error = &consoleError{status: http.StatusNotFound, msg: "There is no such flow."}

// Flow is one flow webhook as the console shows it.
type Flow struct {
	ID, Account, Name string
	Status            string // live, draft, manual
	Trigger           string // the metric (or topic) that starts it
	Created, Updated  time.Time
	Actions           []FlowAction // in chain order from the entry action
}

// FlowAction is one send-webhook action of a flow.
type FlowAction struct {
	ID      string
	Name    string // its message's name
	Status  string // live, draft, manual, disabled
	URL     string // where it posts; pages show only its Host
	Headers []FlowHeader
	Body    string // the body template
	Counts  FlowCounts
}

// Host is the host (and port) the action posts to: no path or query,
// which may carry a token.
func (a FlowAction) Host() string { return endpointHost(a.URL) }

// FlowHeader is a header the action sends, its value masked as the API
// shows it.
type FlowHeader struct{ Name, Masked string }

// FlowCounts are what delivery counts per action (subscriptions/flows
// Counts): triggering events delivered, skipped (refused, retries
// exhausted or body not rendered) and waiting to retry; requests made
// and of them failed.
type FlowCounts struct {
	Delivered, Skipped, Waiting int64
	Attempts, Failed            int64
}

// FlowPreview is a body template rendered with the sample event: the
// output (indented JSON), or the fault with its template line.
type FlowPreview struct {
	Output string
	Fault  string // what went wrong; "" when it rendered
	Line   int    // of the fault; 0 when unknown
	Sample string // the sample event, as JSON
}

// flowAttempts is how many recent attempts an action's section shows.
const flowAttempts = 20

// flowsPage lists the flow webhooks the viewer may see.
func (c *Console) flowsPage(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, err := c.flowList(r.Context(), v)
	if err != nil {
		return err
	}
	c.renderPage(w, r, v, "flows", "Flows", "flows", d)
	return nil
}

// flowRows is the fragment console.js polls to keep the flow list live.
func (c *Console) flowRows(w http.ResponseWriter, r *http.Request, v *viewer) error {
	if c.cfg.Plugins.Flows == nil {
		return errUnavailable
	}
	d, err := c.flowList(r.Context(), v)
	if err != nil {
		return err
	}
	c.renderFragment(w, r, v, "flows", "rows", d)
	return nil
}

// flowList is the flow list v may see.
func (c *Console) flowList(ctx context.Context, v *viewer) (flowsData, error) {
	d := flowsData{Available: c.cfg.Plugins.Flows != nil, Operator: v.Operator}
	if d.Available {
		var err error
		if d.Flows, err = c.cfg.Plugins.Flows.Flows(ctx, v.scope()); err != nil {
			return flowsData{}, err
		}
	}
	return d, nil
}

// flowState is the fragment console.js polls on a flow's page: its
// status and its actions' statuses and counts (not the attempts, which
// cost an attempt log read per action).
func (c *Console) flowState(w http.ResponseWriter, r *http.Request, v *viewer) error {
	if c.cfg.Plugins.Flows == nil {
		return errUnavailable
	}
	f, err := c.cfg.Plugins.Flows.Flow(r.Context(), v.scope(), r.PathValue("id"))
	if err != nil {
		return err
	}
	c.renderFragment(w, r, v, "flow", "state", flowData{Flow: f, Operator: v.Operator})
	return nil
}

type flowsData struct {
	Available bool
	Operator  bool
	Flows     []Flow
}

// flowData is one flow's page.
type flowData struct {
	Flow     Flow
	Operator bool
	Attempts bool // the attempt log is on
	Actions  []actionData
}

// actionData is one action's section: its recent attempts and the
// preview form, which holds the template the viewer last posted.
type actionData struct {
	FlowAction
	Log     []Attempt
	Draft   string
	Preview *FlowPreview
}

// scope is the account whose flows v may see: "" (every account) for
// the operator.
func (v *viewer) scope() string {
	if v.Operator {
		return ""
	}
	return v.Account
}

// flowData gathers flow id's page for v.
func (c *Console) flowData(ctx context.Context, v *viewer, id string) (flowData, error) {
	p := c.cfg.Plugins.Flows
	if p == nil {
		return flowData{}, errUnavailable
	}
	f, err := p.Flow(ctx, v.scope(), id)
	if err != nil {
		return flowData{}, err
	}
	d := flowData{Flow: f, Operator: v.Operator, Attempts: c.cfg.Plugins.Attempts != nil}
	for _, a := range f.Actions {
		ad := actionData{FlowAction: a, Draft: a.Body}
		if p := c.cfg.Plugins.Attempts; p != nil {
			// Flow attempts are in the attempt log under the action's id.
			wh := subscriptions.Webhook{ID: a.ID, AccountID: f.Account}
			if ad.Log, _, err = p.Attempts(ctx, wh, AttemptFilter{Limit: flowAttempts}); err != nil {
				return flowData{}, err
			}
		}
		d.Actions = append(d.Actions, ad)
	}
	return d, nil
}

func (c *Console) flowPage(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, err := c.flowData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	c.renderPage(w, r, v, "flow", d.Flow.Name, "flows", d)
	return nil
}

// previewForm caps the preview's form: a template of the largest size a
// save accepts (16 KiB), each byte percent-encoded, and the CSRF token.
// A longer template still arrives whole up to the cap, so the preview
// says it is over the budget instead of failing the form.
const previewForm = 3*(16<<10) + 4<<10

// preview renders the posted body template of one action with the
// sample event and shows the flow's page with the result under it.
func (c *Console) preview(w http.ResponseWriter, r *http.Request, v *viewer) error {
	d, err := c.flowData(r.Context(), v, r.PathValue("id"))
	if err != nil {
		return err
	}
	actionID := r.PostForm.Get("action")
	i := -1
	for j := range d.Actions {
		if d.Actions[j].ID == actionID {
			i = j
		}
	}
	if i < 0 {
		return &consoleError{status: http.StatusNotFound, msg: "There is no such action in this flow."}
	}
	body := r.PostForm.Get("body")
	pv, err := c.cfg.Plugins.Flows.Preview(r.Context(), d.Flow.Account, body)
	if err != nil {
		return err
	}
	d.Actions[i].Draft, d.Actions[i].Preview = body, &pv
	status := http.StatusOK
	if pv.Fault != "" {
		status = http.StatusUnprocessableEntity
	}
	c.renderPageStatus(w, r, status, v, "flow", d.Flow.Name, "flows", d)
	return nil
}
