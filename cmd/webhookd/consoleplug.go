package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/dispatcher"
	"github.com/webhookd/webhookd/dispatcher/activity"
	"github.com/webhookd/webhookd/subscriptions"
)

// The console's plug-ins (console.Plugins) on the real features: the
// dispatcher's backlog, test send and replays, the attempt log's reader,
// the store's staged rotation, and the flows store with the template
// sandbox. They translate types and turn the
// features' errors into the messages the console shows.

// consolePlugins wires what this process has; reader is nil when the
// attempt log is off (its sections then say "not available").
func consolePlugins(d *dispatcher.Dispatcher, reader *activity.Reader, store *subscriptions.Store, fp flowPlug) console.Plugins {
	dp := dispatchPlug{d: d}
	p := console.Plugins{Backlog: dp, Test: dp, Replay: dp, Secrets: rotatePlug{store: store}, Flows: fp}
	if reader != nil {
		lp := logPlug{r: reader}
		p.Attempts, p.Delivered = lp, lp
	}
	return p
}

// dispatchPlug is the dispatcher's backlog, test send and replays.
type dispatchPlug struct{ d *dispatcher.Dispatcher }

func (p dispatchPlug) Backlog(ctx context.Context, wh subscriptions.Webhook) (int64, error) {
	n, err := p.d.Backlog(ctx, wh)
	return n, dispatchErr(err)
}

func (p dispatchPlug) SendTest(ctx context.Context, wh subscriptions.Webhook) (console.Attempt, error) {
	a, err := p.d.TestSend(ctx, wh)
	if err != nil {
		return console.Attempt{}, dispatchErr(err)
	}
	return consoleAttempt(a), nil
}

func (p dispatchPlug) StartReplay(ctx context.Context, wh subscriptions.Webhook, from, to time.Time) (console.Replay, error) {
	rp, err := p.d.StartReplay(ctx, wh, from, to, wh.Topics)
	if err != nil {
		return console.Replay{}, dispatchErr(err)
	}
	return consoleReplay(rp), nil
}

func (p dispatchPlug) Replays(ctx context.Context, wh subscriptions.Webhook) ([]console.Replay, error) {
	rps, err := p.d.Replays(ctx, wh)
	if err != nil {
		return nil, dispatchErr(err)
	}
	out := make([]console.Replay, len(rps))
	for i, rp := range rps {
		out[i] = consoleReplay(rp)
	}
	return out, nil
}

func (p dispatchPlug) CancelReplay(ctx context.Context, wh subscriptions.Webhook, id string) (console.Replay, error) {
	rp, err := p.d.CancelReplay(ctx, wh, id)
	if errors.Is(err, subscriptions.ErrReplayNotFound) {
		return console.Replay{}, console.UserError(http.StatusNotFound, "There is no such replay of this webhook.")
	}
	if err != nil {
		return console.Replay{}, dispatchErr(err)
	}
	return consoleReplay(rp), nil
}

// dispatchErr turns the dispatcher's exported errors into what the
// console shows, with the statuses the API answers (api/errors.go).
func dispatchErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dispatcher.ErrNoSlot):
		return console.UserError(http.StatusTooManyRequests,
			"Every in-flight request slot of this webhook is in use (--max-in-flight); try again in a second.")
	case errors.Is(err, dispatcher.ErrWebhookDisabled):
		return console.UserError(http.StatusConflict, "This webhook is disabled; enable it before replaying its events.")
	case errors.Is(err, dispatcher.ErrReplayWindow):
		return console.UserError(http.StatusUnprocessableEntity,
			"The window starts before the oldest event the stream still keeps; those events are gone. Choose a later start.")
	case errors.Is(err, dispatcher.ErrNotAvailable):
		return console.ErrUnavailable
	}
	return err
}

func consoleReplay(rp subscriptions.Replay) console.Replay {
	return console.Replay{ID: rp.ID, From: rp.Since, To: rp.Until, State: string(rp.State), Reason: rp.Reason,
		Found: rp.EventsFound, Sent: rp.EventsSent, Created: rp.CreatedAt, Finished: rp.FinishedAt}
}

func consoleAttempt(a activity.Attempt) console.Attempt {
	return console.Attempt{ID: a.ID, At: a.StartedAt, Trigger: string(a.Trigger), Outcome: string(a.Outcome),
		Status: a.Status, Events: a.Events, Duration: a.Duration, ErrorClass: string(a.ErrorClass), Error: a.Error,
		ResponseExcerpt: a.ResponseExcerpt, ExternalIDs: a.ExternalIDs, ProfileID: a.ProfileID, Email: a.Email}
}

// logPlug reads the attempt log: its pages and its counts.
type logPlug struct{ r *activity.Reader }

// The filter values the attempt log holds.
var (
	consoleOutcomes = []string{string(activity.Delivered), string(activity.Failed)}
	consoleTriggers = []string{string(activity.TriggerLive), string(activity.TriggerRetry),
		string(activity.TriggerReplay), string(activity.TriggerTest)}
)

func (p logPlug) Attempts(ctx context.Context, wh subscriptions.Webhook, f console.AttemptFilter) ([]console.Attempt, string, error) {
	q, err := logQuery(f)
	if err != nil {
		return nil, "", err
	}
	page, err := p.r.List(ctx, wh.AccountID, wh.ID, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]console.Attempt, len(page.Entries))
	for i, e := range page.Entries {
		out[i] = consoleAttempt(e.Attempt)
	}
	next := ""
	if page.Next != 0 {
		next = strconv.FormatUint(page.Next, 10)
	}
	return out, next, nil
}

// logQuery is the reader's query for f: the time range and external id
// narrow the scan (hints), and Match checks every field.
func logQuery(f console.AttemptFilter) (activity.Query, error) {
	q := activity.Query{Limit: max(f.Limit, 1), ExternalID: f.ExternalID, Since: f.Since, Until: f.Until}
	if f.Outcome != "" && !slices.Contains(consoleOutcomes, f.Outcome) {
		return q, console.UserError(http.StatusBadRequest, "Outcome is delivered or failed.")
	}
	if f.Trigger != "" && !slices.Contains(consoleTriggers, f.Trigger) {
		return q, console.UserError(http.StatusBadRequest, "Trigger is live, retry, replay or test.")
	}
	if f.Cursor != "" {
		n, err := strconv.ParseUint(f.Cursor, 10, 64)
		if err != nil || n == 0 {
			return q, console.UserError(http.StatusBadRequest, "That page link is not one this console made; start from the first page.")
		}
		q.Before = n
	}
	q.Match = func(a *activity.Attempt) bool {
		return (f.Outcome == "" || string(a.Outcome) == f.Outcome) &&
			(f.Trigger == "" || string(a.Trigger) == f.Trigger) &&
			(f.Status == 0 || a.Status == f.Status) &&
			(f.ExternalID == "" || slices.Contains(a.ExternalIDs, f.ExternalID)) &&
			(f.Since.IsZero() || !a.StartedAt.Before(f.Since)) &&
			(f.Until.IsZero() || a.StartedAt.Before(f.Until))
	}
	return q, nil
}

// Delivered counts the attempts started in n windows of step from since
// in one read of the log, bounded by the reader's scan budget (MaxScan
// stored attempts); partial when the budget ran out first.
func (p logPlug) Delivered(ctx context.Context, wh subscriptions.Webhook, since time.Time, step time.Duration, n int) ([]console.Bucket, bool, error) {
	out := make([]console.Bucket, n)
	end := since.Add(time.Duration(n) * step)
	page, err := p.r.List(ctx, wh.AccountID, wh.ID, activity.Query{Limit: p.r.MaxScan, Since: since, Until: end,
		Match: func(a *activity.Attempt) bool { return !a.StartedAt.Before(since) && a.StartedAt.Before(end) }})
	if err != nil {
		return nil, false, err
	}
	for _, e := range page.Entries {
		i := int(e.StartedAt.Sub(since) / step)
		if i < 0 || i >= n {
			continue // Match keeps [since, end); a guard against rounding
		}
		b := &out[i]
		if e.Outcome == activity.Delivered {
			b.Delivered += int64(e.Events)
		} else {
			b.Failed++
		}
	}
	return out, page.Next != 0, nil
}

// rotatePlug starts staged rotations in the store, with the API's rules.
type rotatePlug struct{ store *subscriptions.Store }

func (p rotatePlug) RotateSecret(ctx context.Context, wh subscriptions.Webhook, secret string, overlap time.Duration) error {
	now := time.Now()
	nr := subscriptions.NewRotation{Secret: secret, RetireAt: now.Add(overlap)}
	if probs := nr.Check(now); len(probs) > 0 {
		// The form's words for the API's fields.
		msg := probs[0].Message
		switch probs[0].Field {
		case "retire_previous_at":
			msg = "The overlap may be at most 720h (30 days)."
		case "secret_key":
			msg = "The new secret must be " + strconv.Itoa(subscriptions.MinSecretLen) + " to " +
				strconv.Itoa(subscriptions.MaxSecretLen) + " bytes long."
		}
		return console.UserError(http.StatusBadRequest, msg)
	}
	_, err := p.store.Rotate(ctx, wh.AccountID, wh.ID, nr)
	if errors.Is(err, subscriptions.ErrRotationPending) {
		return console.UserError(http.StatusConflict,
			"A rotation is already in its window; wait until its previous secret retires.")
	}
	return err
}
