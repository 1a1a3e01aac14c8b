package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/webhookd/webhookd/subscriptions/flows"
)

// FlowStore is what the Flows API needs; *flows.Store implements it.
type FlowStore interface {
	Create(ctx context.Context, f flows.Flow, temp []string) (flows.Flow, error)
	Get(ctx context.Context, account, id string) (flows.Flow, error)
	List(ctx context.Context, account string) ([]flows.Flow, error)
	Update(ctx context.Context, account, id string, change func(*flows.Flow) error) (flows.Flow, error)
	Delete(ctx context.Context, account, id string) error
	DeleteAction(ctx context.Context, account, actionID string) (flows.Flow, error)
	FlowOfAction(ctx context.Context, account, actionID string) (flows.Flow, error)
	Counts(ctx context.Context, actionID string) (flows.Counts, error)
}

var (
	errFlowNotFound   = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No flow with this id."}
	errActionNotFound = &apiError{status: http.StatusNotFound, code: codeNotFound, detail: "No flow action with this id."}
)

// flowErr maps the flow store's errors; everything else goes to fail.
func flowErr(err error, notFound *apiError) error {
	switch {
	case errors.Is(err, flows.ErrNotFound):
		return notFound
	case errors.Is(err, flows.ErrLimit):
		return invalid("/data", "This account already has the maximum number of flows; delete one first.")
	case errors.Is(err, flows.ErrLastAction):
		return &apiError{status: http.StatusConflict, code: codeConflict,
			detail: "This is the flow's only action, and a flow has at least one; delete the flow instead (DELETE /api/flows/{id})."}
	case errors.Is(err, flows.ErrConflict):
		return &apiError{status: http.StatusConflict, code: codeConflict, detail: "The flow changed meanwhile; try again."}
	}
	return err
}

// flowsOn wraps a flow handler: without a flow store the routes do not
// exist.
func (s *server) flowsOn(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, account string) error {
		if s.cfg.Flows == nil {
			return errNotFound
		}
		return h(w, r, account)
	}
}

func (s *server) createFlow(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseFlowQuery(r.URL.Query(), true)
	if err != nil {
		return err
	}
	in, err := decode(s, w, r, s.parseFlowCreate)
	if err != nil {
		return err
	}
	if err := s.checkTrigger(r.Context(), account, in.flow.TriggerID); err != nil {
		return err
	}
	in.flow.AccountID = account
	f, err := s.cfg.Flows.Create(r.Context(), in.flow, in.temp)
	if err != nil {
		return flowErr(err, errFlowNotFound)
	}
	base := baseURL(r)
	res := flowResource(base, f, q)
	s.encode(w, http.StatusCreated, document{Data: res, Included: q.included(base, f), Links: selfLink{Self: base + "/api/flows"}})
	return nil
}

func (s *server) listFlows(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseFlowQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	fs, err := s.cfg.Flows.List(r.Context(), account)
	if err != nil {
		return err
	}
	base := baseURL(r)
	page, links := paginate(fs, q, base+"/api/flows")
	data := make([]resource, len(page))
	var inc []resource
	for i, f := range page {
		data[i] = flowResource(base, f, q)
		inc = append(inc, q.included(base, f)...)
	}
	s.encode(w, http.StatusOK, document{Data: data, Included: inc, Links: links})
	return nil
}

// flowOf is the flow named by r's path, for account, and r's query
// (definition: whether it may ask for the flow's definition).
func (s *server) flowOf(r *http.Request, account string, definition bool) (flowQuery, flows.Flow, error) {
	q, err := parseFlowQuery(r.URL.Query(), definition)
	if err != nil {
		return q, flows.Flow{}, err
	}
	f, err := s.cfg.Flows.Get(r.Context(), account, r.PathValue("id"))
	if err != nil {
		return q, flows.Flow{}, flowErr(err, errFlowNotFound)
	}
	return q, f, nil
}

func (s *server) getFlow(w http.ResponseWriter, r *http.Request, account string) error {
	q, f, err := s.flowOf(r, account, true)
	if err != nil {
		return err
	}
	base := baseURL(r)
	res := flowResource(base, f, q)
	s.encode(w, http.StatusOK, document{Data: res, Included: q.included(base, f), Links: res.Links})
	return nil
}

// updateFlow sets a flow's status and, as Klaviyo's "Update Flow Status"
// does, the status of every action in it.
func (s *server) updateFlow(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseFlowQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	status, err := decode(s, w, r, func(b []byte) (string, error) { return parseFlowPatch(b, id) })
	if err != nil {
		return err
	}
	f, err := s.cfg.Flows.Update(r.Context(), account, id, func(f *flows.Flow) error {
		f.Status = status
		for i := range f.Actions {
			f.Actions[i].Status = status
		}
		return nil
	})
	if err != nil {
		return flowErr(err, errFlowNotFound)
	}
	res := flowResource(baseURL(r), f, q)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}

func (s *server) deleteFlow(w http.ResponseWriter, r *http.Request, account string) error {
	if err := s.cfg.Flows.Delete(r.Context(), account, r.PathValue("id")); err != nil {
		return flowErr(err, errFlowNotFound)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) listFlowActions(w http.ResponseWriter, r *http.Request, account string) error {
	q, f, err := s.flowOf(r, account, false)
	if err != nil {
		return err
	}
	base := baseURL(r)
	acts, links := paginate(f.Actions, q, flowURL(base, f.ID)+"/flow-actions")
	data := make([]resource, len(acts))
	for i, a := range acts {
		data[i] = actionResource(base, f, a)
	}
	s.encode(w, http.StatusOK, document{Data: data, Links: links})
	return nil
}

func (s *server) getFlowAction(w http.ResponseWriter, r *http.Request, account string) error {
	if _, err := parseFlowQuery(r.URL.Query(), false); err != nil {
		return err
	}
	id := r.PathValue("id")
	f, err := s.cfg.Flows.FlowOfAction(r.Context(), account, id)
	if err != nil {
		return flowErr(err, errActionNotFound)
	}
	a, ok := f.Action(id)
	if !ok {
		return errActionNotFound
	}
	res := actionResource(baseURL(r), f, a)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}

// updateFlowAction replaces an action's status and message. Its place in
// the chain cannot change: links.next, if sent, must be the current one.
// A header sent back with its masked value keeps the stored value, so a
// read-modify-write round trip does not overwrite secrets with masks.
func (s *server) updateFlowAction(w http.ResponseWriter, r *http.Request, account string) error {
	if _, err := parseFlowQuery(r.URL.Query(), false); err != nil {
		return err
	}
	id := r.PathValue("id")
	p, err := decode(s, w, r, func(b []byte) (actionPatch, error) { return s.parseActionPatch(b, id) })
	if err != nil {
		return err
	}
	f, err := s.cfg.Flows.FlowOfAction(r.Context(), account, id)
	if err != nil {
		return flowErr(err, errActionNotFound)
	}
	f, err = s.cfg.Flows.Update(r.Context(), account, f.ID, func(f *flows.Flow) error {
		for i := range f.Actions {
			a := &f.Actions[i]
			if a.ID != id {
				continue
			}
			if p.next != nil && *p.next != a.Next {
				return invalid("/data/attributes/definition/links/next", "An action's links.next cannot be changed.")
			}
			msg := p.message
			msg.ID = a.Message.ID
			for name, v := range msg.Headers {
				for oldName, old := range a.Message.Headers { // header names are case-insensitive
					if strings.EqualFold(name, oldName) && v == flows.Mask(old) {
						msg.Headers[name] = old
					}
				}
			}
			a.Status, a.Message = p.status, msg
			return nil
		}
		return errActionNotFound
	})
	if err != nil {
		return flowErr(err, errActionNotFound)
	}
	a, _ := f.Action(id)
	res := actionResource(baseURL(r), f, a)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}

// deleteFlowAction serves the SDK's deleteFlowAction: the action
// leaves its flow, whose chain closes over it (README, Flow webhooks). A
// live action stops sending at delivery's next index reload on every
// replica; its retries still queued are recorded as skipped
// (action_not_live), not sent.
func (s *server) deleteFlowAction(w http.ResponseWriter, r *http.Request, account string) error {
	id := r.PathValue("id")
	if _, err := s.cfg.Flows.DeleteAction(r.Context(), account, id); err != nil {
		return flowErr(err, errActionNotFound)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// flowActionCounts is the extension GET
// /webhookd/flow-actions/{id}/counts: how many triggering events the
// action delivered, skipped and has waiting to retry, and its requests.
func (s *server) getFlowActionCounts(w http.ResponseWriter, r *http.Request, account string) error {
	id := r.PathValue("id")
	if _, err := s.cfg.Flows.FlowOfAction(r.Context(), account, id); err != nil {
		return flowErr(err, errActionNotFound)
	}
	c, err := s.cfg.Flows.Counts(r.Context(), id)
	if err != nil {
		return err
	}
	self := selfLink{Self: baseURL(r) + "/webhookd/flow-actions/" + url.PathEscape(id) + "/counts"}
	s.encode(w, http.StatusOK, document{
		Data: resource{Type: "flow-action-counts", ID: id, Attributes: map[string]int64{
			"delivered": c.Delivered, "skipped": c.Skipped, "waiting_to_retry": c.Waiting,
			"attempts": c.Attempts, "failed_attempts": c.Failed,
		}, Links: self},
		Links: self,
	})
	return nil
}

// paginate cuts items to the page q asks for (page[cursor] is an offset
// webhookd made) and returns the page's links.
func paginate[T any](items []T, q flowQuery, self string) ([]T, collectionLinks) {
	links := collectionLinks{Self: self}
	from := min(q.cursor, len(items))
	to := min(from+q.size, len(items))
	if to < len(items) {
		next := self + "?page%5Bcursor%5D=" + strconv.Itoa(to) + "&page%5Bsize%5D=" + strconv.Itoa(q.size)
		links.Next = &next
	}
	if from > 0 {
		prev := self + "?page%5Bcursor%5D=" + strconv.Itoa(max(0, from-q.size)) + "&page%5Bsize%5D=" + strconv.Itoa(q.size)
		links.Prev = &prev
	}
	return items[from:to], links
}

// listFlowActionIDs is getActionIdsForFlow: the flow's action linkage.
func (s *server) listFlowActionIDs(w http.ResponseWriter, r *http.Request, account string) error {
	q, f, err := s.flowOf(r, account, false)
	if err != nil {
		return err
	}
	acts, links := paginate(f.Actions, q, flowURL(baseURL(r), f.ID)+"/relationships/flow-actions")
	ids := make([]identifier, len(acts))
	for i, a := range acts {
		ids[i] = identifier{Type: "flow-action", ID: a.ID}
	}
	s.encode(w, http.StatusOK, document{Data: ids, Links: links})
	return nil
}

// getFlowOfAction is getFlowForFlowAction: the action's flow, without
// its definition.
func (s *server) getFlowOfAction(w http.ResponseWriter, r *http.Request, account string) error {
	q, err := parseFlowQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	f, err := s.cfg.Flows.FlowOfAction(r.Context(), account, r.PathValue("id"))
	if err != nil {
		return flowErr(err, errActionNotFound)
	}
	res := flowResource(baseURL(r), f, q)
	s.encode(w, http.StatusOK, document{Data: res, Links: res.Links})
	return nil
}

// flowActionAttempts serves GET /webhookd/flow-actions/{id}/attempts
// (one false) and .../attempts/{attempt_id} (one true): the action's
// requests from the attempt log, one per triggering event and try, with
// flow_id and profile_id, newest first, as for webhooks.
func (s *server) flowActionAttempts(one bool) handler {
	return func(w http.ResponseWriter, r *http.Request, account string) error {
		if s.cfg.Attempts == nil {
			return errNotFound
		}
		id := r.PathValue("id")
		if _, err := s.cfg.Flows.FlowOfAction(r.Context(), account, id); err != nil {
			return flowErr(err, errActionNotFound)
		}
		if one {
			return s.writeAttempt(w, r, account, id)
		}
		return s.writeAttempts(w, r, account, id)
	}
}
