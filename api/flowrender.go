package api

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/webhookd/webhookd/subscriptions/flows"
)

// Query parameters of the Flows API.
const (
	paramAdditionalFlow = "additional-fields[flow]"
	paramFieldsFlow     = "fields[flow]"
	// page[size] is paramPageSize (attempts.go); page[cursor] is paramCursor.
)

// flowQuery is what a Flows API request's parameters ask for.
type flowQuery struct {
	definition     bool
	includeActions bool
	fields         map[string]bool // nil: every attribute
	size, cursor   int
}

// flowFields are the names fields[flow] accepts.
var flowFields = map[string]bool{"name": true, "status": true, "archived": true, "created": true,
	"updated": true, "trigger_type": true, "id": true, "definition": true}

// parseFlowQuery reads the parameters; withDefinition says whether the
// endpoint may return the definition (create and get one). Parameters
// webhookd does not implement (filter, sort, the other sparse fieldsets,
// include=tags) are refused, not ignored.
func parseFlowQuery(v url.Values, withDefinition bool) (flowQuery, error) {
	q := flowQuery{size: 50}
	var errs errorList
	for _, name := range list(v[paramAdditionalFlow]) {
		if name != "definition" || !withDefinition {
			errs = append(errs, invalidParam(paramAdditionalFlow, "Unsupported value \""+name+"\" here."))
			continue
		}
		q.definition = true
	}
	if vals, ok := v[paramFieldsFlow]; ok {
		q.fields = map[string]bool{}
		for _, name := range list(vals) {
			base, _, _ := strings.Cut(name, ".")
			if !flowFields[base] || (base == "definition" && !withDefinition) {
				errs = append(errs, invalidParam(paramFieldsFlow, "Unknown flow field \""+name+"\"."))
				continue
			}
			q.fields[base] = true
		}
	}
	for _, name := range list(v[paramInclude]) {
		if name != "flow-actions" {
			errs = append(errs, invalidParam(paramInclude, "Unsupported include value \""+name+"\"; supported: flow-actions."))
			continue
		}
		q.includeActions = true
	}
	if s := v.Get(paramPageSize); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 50 {
			errs = append(errs, invalidParam(paramPageSize, "page[size] must be between 1 and 50."))
		}
		q.size = n
	}
	if s := v.Get(paramCursor); s != "" {
		if i := strings.LastIndex(s, "page%5Bcursor%5D="); i >= 0 { // an http:// links.next sent whole
			s, _, _ = strings.Cut(s[i+len("page%5Bcursor%5D="):], "&")
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			errs = append(errs, invalidParam(paramCursor, "page[cursor] is not a cursor webhookd made."))
		}
		q.cursor = n
	}
	for _, p := range []string{"filter", "sort", "fields[flow-action]", "fields[tag]", "fields[flow-message]"} {
		if v.Has(p) {
			errs = append(errs, invalidParam(p, p+" is not supported by webhookd's Flows API."))
		}
	}
	return q, errs.err()
}

// included lists f's actions when the query asks for them.
func (q flowQuery) included(base string, f flows.Flow) []resource {
	if !q.includeActions {
		return nil
	}
	out := make([]resource, len(f.Actions))
	for i, a := range f.Actions {
		out[i] = actionResource(base, f, a)
	}
	return out
}

func flowURL(base, id string) string   { return base + "/api/flows/" + url.PathEscape(id) }
func actionURL(base, id string) string { return base + "/api/flow-actions/" + url.PathEscape(id) }

// relLinks are a relationship's links (Klaviyo's RelationshipLinks).
type relLinks struct {
	Self    string `json:"self"`
	Related string `json:"related"`
}

type toMany struct {
	Data  []identifier `json:"data"`
	Links relLinks     `json:"links"`
}

type toOne struct {
	Data  identifier `json:"data"`
	Links relLinks   `json:"links"`
}

// flowResource renders f: the definition only when q asks for it.
func flowResource(base string, f flows.Flow, q flowQuery) resource {
	attrs := map[string]any{
		"name": f.Name, "status": f.Status, "archived": false,
		"created": formatTime(f.Created), "updated": formatTime(f.Updated), "trigger_type": "Metric",
	}
	if q.definition {
		attrs["definition"] = definition(f)
	}
	if q.fields != nil {
		for k := range attrs {
			if !q.fields[k] {
				delete(attrs, k)
			}
		}
	}
	ids := make([]identifier, len(f.Actions))
	for i, a := range f.Actions {
		ids[i] = identifier{Type: "flow-action", ID: a.ID}
	}
	self := flowURL(base, f.ID)
	return resource{
		Type: "flow", ID: f.ID, Attributes: attrs,
		Relationships: map[string]any{"flow-actions": toMany{Data: ids,
			Links: relLinks{Self: self + "/relationships/flow-actions", Related: self + "/flow-actions"}}},
		Links: selfLink{Self: self},
	}
}

// definition renders a FlowDefinition. Every key of the SDK's
// MetricTrigger and SendWebhookAction schemas is present (null when
// unset), so the SDK deserialises them as typed objects.
func definition(f flows.Flow) map[string]any {
	actions := make([]any, len(f.Actions))
	for i, a := range f.Actions {
		actions[i] = actionDefinition(a)
	}
	var reentry any
	if f.Reentry != nil {
		reentry = map[string]any{"duration": f.Reentry.Duration, "unit": f.Reentry.Unit}
	}
	return map[string]any{
		"triggers":         []any{map[string]any{"type": "metric", "id": f.TriggerID, "trigger_filter": nil}},
		"profile_filter":   nil,
		"actions":          actions,
		"entry_action_id":  f.EntryID,
		"reentry_criteria": reentry,
	}
}

// actionDefinition renders a SendWebhookAction; header values are masked.
func actionDefinition(a flows.Action) map[string]any {
	var next *string
	if a.Next != "" {
		next = &a.Next
	}
	headers := make(map[string]string, len(a.Message.Headers))
	for k, v := range a.Message.Headers {
		headers[k] = flows.Mask(v)
	}
	return map[string]any{
		"id": a.ID, "temporary_id": nil, "type": "send-webhook",
		"links": map[string]any{"next": next},
		"data": map[string]any{"status": a.Status, "message": map[string]any{
			"id": a.Message.ID, "name": a.Message.Name, "url": a.Message.URL, "headers": headers, "body": a.Message.Body,
		}},
	}
}

// actionResource renders a flow-action.
func actionResource(base string, f flows.Flow, a flows.Action) resource {
	self := actionURL(base, a.ID)
	return resource{
		Type: "flow-action", ID: a.ID,
		Attributes: map[string]any{
			"created": formatTime(a.Created), "updated": formatTime(a.Updated), "definition": actionDefinition(a),
		},
		Relationships: map[string]any{
			"flow": toOne{Data: identifier{Type: "flow", ID: f.ID},
				Links: relLinks{Self: self + "/relationships/flow", Related: self + "/flow"}},
			// Linkage only: webhookd serves no flow-message endpoints.
			"flow-messages": relationship{Data: []identifier{{Type: "flow-message", ID: a.Message.ID}}},
		},
		Links: selfLink{Self: self},
	}
}
