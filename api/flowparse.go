package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/webhookd/webhookd/batcher/flowtmpl"
	"github.com/webhookd/webhookd/subscriptions"
	"github.com/webhookd/webhookd/subscriptions/flows"
)

// Flow definitions are decoded member by member from raw JSON, so that
// every member webhookd does not implement exactly is refused with its
// pointer instead of being ignored: Klaviyo's definition language is much
// larger than one metric trigger and send-webhook actions.

// maxFlowActions bounds a flow's actions (each is one POST per event).
const maxFlowActions = 20

// obj is a JSON object being read at pointer ptr, recording faults.
type obj struct {
	ptr  string
	m    map[string]json.RawMessage
	errs *errorList
}

// object decodes raw as an object at ptr; ok is false (and the fault
// recorded) when it is not one. A null is absent.
func object(raw json.RawMessage, ptr string, errs *errorList) (o obj, present, ok bool) {
	o = obj{ptr: ptr, errs: errs}
	if raw == nil || isNull(raw) {
		return o, false, true
	}
	if err := json.Unmarshal(raw, &o.m); err != nil || o.m == nil {
		*errs = append(*errs, invalid(ptr, "Expected an object."))
		return o, true, false
	}
	return o, true, true
}

func (o obj) at(name string) string { return o.ptr + "/" + name }

func (o obj) fail(name, detail string) { *o.errs = append(*o.errs, invalid(o.at(name), detail)) }

// only refuses every member not in names.
func (o obj) only(what string, names ...string) {
	keys := make([]string, 0, len(o.m))
	for k := range o.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(names, k) {
			o.fail(k, fmt.Sprintf("%s has no member %q that webhookd supports (supported: %s).", what, k, strings.Join(names, ", ")))
		}
	}
}

// str reads a string member; present is false when absent or null.
func (o obj) str(name string, required bool) (v string, present bool) {
	raw, ok := o.m[name]
	if !ok || isNull(raw) {
		if required {
			o.fail(name, name+" is required.")
		}
		return "", false
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		o.fail(name, name+" must be a string.")
		return "", false
	}
	return v, true
}

// null refuses a member that is present and not null.
func (o obj) null(name, detail string) {
	if raw, ok := o.m[name]; ok && !isNull(raw) {
		o.fail(name, detail)
	}
}

// flowInput is a parsed flow definition with the temporary ids of its
// actions, in order.
type flowInput struct {
	flow flows.Flow
	temp []string
}

// parseFlowCreate decodes a FlowCreateQuery.
func (s *server) parseFlowCreate(body []byte) (flowInput, error) {
	var in flowInput
	data, err := parseData(body, "flow")
	if err != nil {
		return in, err
	}
	var errs errorList
	attrs, _, ok := object(data.m["attributes"], "/data/attributes", &errs)
	if !ok || attrs.m == nil {
		return in, invalid("/data/attributes", "attributes is required.")
	}
	attrs.only("A flow", "name", "definition", "status")
	attrs.null("status", "status cannot be set on create; a new flow is a draft (PATCH it to go live).")
	if name, ok := attrs.str("name", true); ok {
		in.flow.Name = name
		if strings.TrimSpace(name) == "" {
			attrs.fail("name", "name must not be empty.")
		}
	}
	def, present, ok := object(attrs.m["definition"], attrs.at("definition"), &errs)
	if !present && ok {
		attrs.fail("definition", "definition is required.")
	}
	if present && ok {
		s.parseDefinition(def, &in)
	}
	return in, errs.err()
}

func (s *server) parseDefinition(def obj, in *flowInput) {
	def.only("A flow definition", "triggers", "profile_filter", "actions", "entry_action_id", "reentry_criteria")
	def.null("profile_filter", "Profile filters are not supported; send profile_filter null.")
	parseReentry(def, in)
	parseTriggers(def, in)
	var actions []json.RawMessage
	if raw, ok := def.m["actions"]; !ok || json.Unmarshal(raw, &actions) != nil || len(actions) == 0 {
		def.fail("actions", "actions must be a non-empty array of send-webhook actions.")
	} else if len(actions) > maxFlowActions {
		def.fail("actions", fmt.Sprintf("A flow has at most %d actions.", maxFlowActions))
	} else {
		for i, raw := range actions {
			a, temp := s.parseCreateAction(raw, def.at("actions/"+strconv.Itoa(i)), def.errs)
			in.flow.Actions = append(in.flow.Actions, a)
			in.temp = append(in.temp, temp)
		}
	}
	entry, _ := def.str("entry_action_id", true)
	in.flow.EntryID = entry
	if len(*def.errs) == 0 {
		checkChain(def, in)
	}
}

func parseReentry(def obj, in *flowInput) {
	re, present, ok := object(def.m["reentry_criteria"], def.at("reentry_criteria"), def.errs)
	if !present || !ok {
		return
	}
	var r flows.Reentry
	if json.Unmarshal(re.m["duration"], &r.Duration) != nil || json.Unmarshal(re.m["unit"], &r.Unit) != nil ||
		r.Duration != 0 || r.Unit != "alltime" || len(re.m) != 2 {
		def.fail("reentry_criteria", `Only {"duration": 0, "unit": "alltime"} (every event runs the flow) or null is supported.`)
		return
	}
	in.flow.Reentry = &r
}

func parseTriggers(def obj, in *flowInput) {
	var triggers []json.RawMessage
	if raw, ok := def.m["triggers"]; !ok || json.Unmarshal(raw, &triggers) != nil || len(triggers) != 1 {
		def.fail("triggers", "triggers must be an array of exactly one metric trigger.")
		return
	}
	tr, _, ok := object(triggers[0], def.at("triggers/0"), def.errs)
	if !ok || tr.m == nil {
		def.fail("triggers/0", "Expected a trigger object.")
		return
	}
	tr.only("A metric trigger", "type", "id", "trigger_filter")
	typ, _ := tr.str("type", true)
	if typ != "" && typ != "metric" {
		tr.fail("type", fmt.Sprintf("Unsupported trigger type %q; only \"metric\" is supported.", typ))
		return
	}
	tr.null("trigger_filter", "Trigger filters are not supported; send trigger_filter null.")
	if id, ok := tr.str("id", true); ok {
		if strings.TrimSpace(id) == "" || len(id) > 256 {
			tr.fail("id", "id must name a topic of the account or a metric id.")
		}
		in.flow.TriggerID = id
	}
}

// parseCreateAction reads one action of a create: a temporary_id and no
// id.
func (s *server) parseCreateAction(raw json.RawMessage, ptr string, errs *errorList) (flows.Action, string) {
	a, _, ok := object(raw, ptr, errs)
	if !ok || a.m == nil {
		*errs = append(*errs, invalid(ptr, "Expected an action object."))
		return flows.Action{}, ""
	}
	a.only("A send-webhook action", "temporary_id", "type", "links", "data", "id")
	a.null("id", "id is not allowed on create; use temporary_id.")
	temp, _ := a.str("temporary_id", true)
	act := s.parseActionBody(a, true)
	return act, temp
}

// parseActionBody reads type, links and data of an action object.
func (s *server) parseActionBody(a obj, create bool) flows.Action {
	var act flows.Action
	if typ, ok := a.str("type", true); ok && typ != "send-webhook" {
		a.fail("type", fmt.Sprintf("Unsupported action type %q; only \"send-webhook\" is supported.", typ))
		return act
	}
	if links, present, ok := object(a.m["links"], a.at("links"), a.errs); present && ok {
		links.only("links", "next")
		act.Next, _ = links.str("next", false)
	}
	data, present, ok := object(a.m["data"], a.at("data"), a.errs)
	if !present && ok {
		a.fail("data", "data (status and message) is required.")
	}
	if !present || !ok {
		return act
	}
	data.only("Action data", "status", "message")
	act.Status = flows.StatusDraft
	if st, ok := data.str("status", false); ok {
		if !flows.ValidActionStatus(st) {
			data.fail("status", "status must be one of disabled, draft, live, manual.")
		}
		act.Status = st
	}
	msg, present, ok := object(data.m["message"], data.at("message"), a.errs)
	if !present && ok {
		data.fail("message", "message is required.")
	}
	if present && ok {
		act.Message = s.parseMessage(msg, create)
	}
	return act
}

func (s *server) parseMessage(m obj, create bool) flows.Message {
	var msg flows.Message
	m.only("A webhook message", "id", "name", "url", "headers", "body")
	if create {
		m.null("id", "message.id is not allowed on create.")
	}
	msg.Name, _ = m.str("name", false)
	if u, ok := m.str("url", true); ok {
		msg.URL = u
		if err := subscriptions.ValidateEndpoint(u, s.cfg.AllowInsecureEndpoints); err != nil {
			m.fail("url", strings.ReplaceAll(endpointDetail(err), "endpoint_url", "url"))
		}
	}
	if raw, ok := m.m["headers"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &msg.Headers); err != nil {
			m.fail("headers", "headers must be an object of string values.")
		} else if err := flows.ValidateHeaders(msg.Headers); err != nil {
			var he *flows.HeaderError
			ptr := "headers"
			if errors.As(err, &he) && he.Name != "" {
				ptr += "/" + strings.ReplaceAll(strings.ReplaceAll(he.Name, "~", "~0"), "/", "~1")
			}
			m.fail(ptr, err.Error()+".")
		}
	}
	if body, ok := m.str("body", true); ok {
		msg.Body = body
		if err := flowtmpl.Validate(body, flowtmpl.Limits{}, flowtmpl.Organization{}); err != nil {
			m.fail("body", templateDetail(err))
		}
	}
	return msg
}

// templateDetail explains a template fault, with its line.
func templateDetail(err error) string {
	var te *flowtmpl.Error
	if !errors.As(err, &te) {
		return "The body template cannot be used."
	}
	switch {
	case errors.Is(err, flowtmpl.ErrNotJSON):
		return "The body template, rendered with a sample Placed Order event and profile, is not valid JSON: " + te.Msg + "."
	case te.Line > 0:
		return fmt.Sprintf("The body template has an error on line %d: %s.", te.Line, te.Msg)
	}
	return "The body template cannot be used: " + te.Msg + "."
}

// checkChain checks that the temporary ids are unique and that the
// links from entry_action_id reach every action exactly once.
func checkChain(def obj, in *flowInput) {
	index := map[string]int{}
	for i, t := range in.temp {
		if _, dup := index[t]; dup {
			def.fail("actions/"+strconv.Itoa(i)+"/temporary_id", fmt.Sprintf("temporary_id %q is used twice.", t))
			return
		}
		index[t] = i
	}
	for i, a := range in.flow.Actions {
		if _, ok := index[a.Next]; a.Next != "" && !ok {
			def.fail("actions/"+strconv.Itoa(i)+"/links/next", fmt.Sprintf("links.next %q names no action of this flow.", a.Next))
			return
		}
	}
	cur, ok := index[in.flow.EntryID]
	if !ok {
		def.fail("entry_action_id", fmt.Sprintf("entry_action_id %q names no action of this flow.", in.flow.EntryID))
		return
	}
	seen := map[int]bool{}
	for {
		if seen[cur] {
			def.fail("actions/"+strconv.Itoa(cur)+"/links/next", "The actions' links form a cycle.")
			return
		}
		seen[cur] = true
		next := in.flow.Actions[cur].Next
		if next == "" {
			break
		}
		cur = index[next]
	}
	for i := range in.flow.Actions {
		if !seen[i] {
			def.fail("actions/"+strconv.Itoa(i), "This action is not reached from entry_action_id through links.next.")
			return
		}
	}
}

// rawData is a document's primary data as an object.
type rawData struct {
	obj
	id *string
}

// parseData decodes a document and checks data.type.
func parseData(body []byte, typ string) (rawData, error) {
	var doc struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return rawData{}, parseError("The request body is not valid JSON.")
	}
	var errs errorList
	data, _, ok := object(doc.Data, "/data", &errs)
	if !ok || data.m == nil {
		return rawData{}, invalid("/data", "data is required and must be an object.")
	}
	t, ok := data.str("type", true)
	if err := errs.err(); err != nil {
		return rawData{}, err
	}
	if !ok || t != typ {
		return rawData{}, conflict("/data/type", fmt.Sprintf("data.type must be %q.", typ))
	}
	rd := rawData{obj: data}
	if id, ok := data.str("id", false); ok {
		rd.id = &id
	}
	return rd, errs.err()
}

// checkID requires data.id to equal the path's id.
func (d rawData) checkID(id string) error {
	switch {
	case d.id == nil:
		return invalid("/data/id", "data.id is required.")
	case *d.id != id:
		return conflict("/data/id", "data.id does not match the id in the path.")
	}
	return nil
}

// parseFlowPatch decodes a FlowUpdateQuery: only the status.
func parseFlowPatch(body []byte, id string) (string, error) {
	data, err := parseData(body, "flow")
	if err != nil {
		return "", err
	}
	if err := data.checkID(id); err != nil {
		return "", err
	}
	var errs errorList
	attrs, _, ok := object(data.m["attributes"], "/data/attributes", &errs)
	if !ok || attrs.m == nil {
		return "", invalid("/data/attributes", "attributes.status is required.")
	}
	attrs.only("A flow update", "status")
	st, ok := attrs.str("status", true)
	if ok && !flows.ValidFlowStatus(st) {
		attrs.fail("status", "status must be one of draft, manual, live.")
	}
	return st, errs.err()
}

// actionPatch is a parsed PATCH of a flow action.
type actionPatch struct {
	status  string
	message flows.Message
	next    *string // links.next as sent; nil if absent
}

// parseActionPatch decodes a FlowActionUpdateQuery for action id.
func (s *server) parseActionPatch(body []byte, id string) (actionPatch, error) {
	var p actionPatch
	data, err := parseData(body, "flow-action")
	if err != nil {
		return p, err
	}
	if err := data.checkID(id); err != nil {
		return p, err
	}
	var errs errorList
	attrs, _, ok := object(data.m["attributes"], "/data/attributes", &errs)
	if !ok || attrs.m == nil {
		return p, invalid("/data/attributes", "attributes.definition is required.")
	}
	attrs.only("A flow-action update", "definition")
	def, present, ok := object(attrs.m["definition"], attrs.at("definition"), &errs)
	if !present && ok {
		attrs.fail("definition", "definition is required.")
	}
	if !present || !ok {
		return p, errs.err()
	}
	def.only("A send-webhook action", "id", "temporary_id", "type", "links", "data")
	def.null("temporary_id", "temporary_id is only for create.")
	if did, ok := def.str("id", false); ok && did != id {
		def.fail("id", "definition.id does not match the id in the path.")
	}
	if links, present, ok := object(def.m["links"], def.at("links"), &errs); present && ok {
		if raw, ok := links.m["next"]; ok {
			n := ""
			if !isNull(raw) {
				n, _ = links.str("next", false)
			}
			p.next = &n
		}
	}
	act := s.parseActionBody(def, false)
	p.status, p.message = act.Status, act.Message
	return p, errs.err()
}
