package dispatcher

import (
	"errors"
	"fmt"
	"strings"
)

// CheckTopic accepts a topic id usable as the head of an event subject
// (see ParseSubject): exactly two literal tokens, such as
// event:klaviyo.sent_sms, with no empty token, no white space and no
// wildcard. A third token would be read as the account id, and a
// wildcard or blank makes a subject NATS refuses to publish on. It is the
// one rule for topics that producers publish on (`webhookd publish
// --topic`).
func CheckTopic(topic string) error {
	if topic == "" {
		return errors.New("required, e.g. event:klaviyo.sent_sms")
	}
	if strings.ContainsAny(topic, " \t\r\n*>") {
		return errors.New("topic may not contain white space or the wildcards * and >")
	}
	toks := strings.Split(topic, ".")
	for _, tok := range toks {
		if tok == "" {
			return errors.New("topic has an empty token")
		}
	}
	if len(toks) != topicTokens {
		return fmt.Errorf("want %d tokens, e.g. event:klaviyo.sent_sms, not %d (an account id follows the topic as its own token)", topicTokens, len(toks))
	}
	return nil
}

// CheckCaptured accepts a topic (see CheckTopic) whose events the stream
// captures: some stream subject matches <topic> or <topic>.<account>.
// A topic it refuses could be subscribed but would never receive an
// event, so declaring it up front must fail and say which --subjects
// to add.
func CheckCaptured(topic string, subjects []string) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	toks := strings.Split(topic, ".")
	for _, s := range subjects {
		st := strings.Split(s, ".")
		if subjectMatches(st, toks) || subjectMatches(st, append(toks[:len(toks):len(toks)], "account")) {
			return nil
		}
	}
	return fmt.Errorf("the event stream does not capture it (subjects %s); add %s.> to --subjects",
		strings.Join(subjects, ","), toks[0])
}

// subjectMatches reports whether the literal tokens subj match the
// subject pattern pat (with * and a final >).
func subjectMatches(pat, subj []string) bool {
	for i, p := range pat {
		switch {
		case p == ">":
			return len(subj) > i
		case i >= len(subj):
			return false
		case p != "*" && p != subj[i]:
			return false
		}
	}
	return len(pat) == len(subj)
}
