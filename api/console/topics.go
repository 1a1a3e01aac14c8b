package console

import (
	"context"
	"net/http"
	"slices"
	"time"
)

// topicRow is one topic of an account's catalog.
type topicRow struct {
	ID       string
	Webhooks int // of the account's webhooks subscribed to it
}

// accountTopics is one account's catalog.
type accountTopics struct {
	Account string
	Topics  []topicRow
}

func (c *Console) topicsPage(w http.ResponseWriter, r *http.Request, v *viewer) error {
	ctx := r.Context()
	whs, err := c.visible(ctx, v)
	if err != nil {
		return err
	}
	subscribed := map[[2]string]int{}
	accounts := []string{v.Account}
	if v.Operator {
		accounts = append([]string(nil), c.cfg.Accounts...)
	}
	for _, wh := range whs {
		for _, t := range wh.Topics {
			subscribed[[2]string{wh.AccountID, t}]++
		}
		accounts = append(accounts, wh.AccountID)
	}
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	var out []accountTopics
	for _, a := range accounts {
		topics, err := c.cfg.Store.Topics(ctx, a)
		if err != nil {
			return err
		}
		at := accountTopics{Account: a}
		for _, t := range topics {
			at.Topics = append(at.Topics, topicRow{ID: t, Webhooks: subscribed[[2]string{a, t}]})
		}
		out = append(out, at)
	}
	c.renderPage(w, r, v, "topics", "Topics", "topics", out)
	return nil
}

// DeadLetter is one event set aside, as the console shows it.
type DeadLetter struct {
	Sequence uint64 // in the dead-letter stream
	At       time.Time
	Code     string // e.g. not_json
	Reason   string
	Subject  string // the subject the event was published on
	Account  string
	Excerpt  string // the start of the payload, valid UTF-8
	Size     int    // payload bytes
}

// ReasonCount is how many dead letters carry one code.
type ReasonCount struct {
	Code  string
	Count uint64
}

// DeadLetters is what the dead-letter page shows.
type DeadLetters struct {
	Counts []ReasonCount // by code, the largest first
	Latest []DeadLetter  // newest first
	// Scanned is how many of the newest dead letters were read; when
	// CountsScanned is set the counts cover only those (an account's
	// view), else the whole stream.
	Scanned       int
	CountsScanned bool
	Total         uint64 // in the stream, all accounts
	Kept          string // how long the stream keeps them, e.g. "7 days"
}

// DeadLetterReader reads the dead-letter stream for account ("" = every
// account), with at most latest entries.
type DeadLetterReader interface {
	DeadLetters(ctx context.Context, account string, latest int) (DeadLetters, error)
}

// latestDeadLetters is how many entries the page lists.
const latestDeadLetters = 50

func (c *Console) deadLettersPage(w http.ResponseWriter, r *http.Request, v *viewer) error {
	data := map[string]any{"Available": c.cfg.DeadLetters != nil}
	if c.cfg.DeadLetters != nil {
		account := v.Account
		if v.Operator {
			account = ""
		}
		dl, err := c.cfg.DeadLetters.DeadLetters(r.Context(), account, latestDeadLetters)
		if err != nil {
			return err
		}
		data["DL"] = dl
	}
	c.renderPage(w, r, v, "deadletters", "Dead letters", "deadletters", data)
	return nil
}
