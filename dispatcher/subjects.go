package dispatcher

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadSubject: a subject is neither <topic> nor <topic>.<account_id>.
var ErrBadSubject = errors.New("dispatcher: subject is not <topic> or <topic>.<account>")

// A topic id is two NATS tokens, "event:klaviyo" and "sent_sms"; an event
// for a named account carries the account as a third token.
const topicTokens = 2

// ParseSubject splits an event subject into its topic and account. A bare
// topic belongs to defaultAccount.
func ParseSubject(subject, defaultAccount string) (topic, account string, err error) {
	// Scan instead of strings.Split: this runs for every event delivered.
	dots, last := 0, -1
	for i := 0; i < len(subject); i++ {
		switch subject[i] {
		case '.':
			if i == last+1 {
				return "", "", fmt.Errorf("%w: %q", ErrBadSubject, subject) // empty token
			}
			dots++
			last = i
		case '*', '>':
			return "", "", fmt.Errorf("%w: %q", ErrBadSubject, subject)
		}
	}
	if last == len(subject)-1 {
		return "", "", fmt.Errorf("%w: %q", ErrBadSubject, subject) // empty last token
	}
	switch dots {
	case topicTokens - 1:
		return subject, defaultAccount, nil
	case topicTokens:
		return subject[:last], subject[last+1:], nil
	}
	return "", "", fmt.Errorf("%w: %q", ErrBadSubject, subject)
}

// validAccount reports whether an account id can be a subject token.
func validAccount(a string) bool {
	return a != "" && !strings.ContainsAny(a, ". *>\t\r\n")
}

// DefaultSubject is the stream subject captured when none is configured:
// every Klaviyo topic, bare or with an account token.
const DefaultSubject = "event:klaviyo.>"

// CheckStreamSubject rejects stream subjects NATS refuses or that capture
// nothing (tech-notes §1.1): white space, empty tokens, a '>' that is not
// last, a wildcard first token (">" and "*.>" overlap JetStream's own API),
// and '*' or '>' inside a token ("event:*" is a literal, not a wildcard).
// It is the one rule for --subjects and for Config.Subjects.
func CheckStreamSubject(s string) error {
	if strings.ContainsAny(s, " \t\r\n") {
		return errors.New("subject contains white space")
	}
	toks := strings.Split(s, ".")
	if len(toks) < topicTokens {
		// A topic is two tokens: one token captures no topic at all.
		return errors.New("want a prefix and a wildcard or topic, e.g. event:klaviyo.>")
	}
	for i, t := range toks {
		switch {
		case t == "":
			return errors.New("subject has an empty token")
		case t == ">" && i != len(toks)-1:
			return errors.New("'>' must be the last token")
		case (t == "*" || t == ">") && i == 0:
			return errors.New("the first token must be literal: NATS cannot capture > or *.> (list prefixes such as event:klaviyo.>)")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return fmt.Errorf("token %q: wildcards only work as whole tokens", t)
		}
	}
	return nil
}
