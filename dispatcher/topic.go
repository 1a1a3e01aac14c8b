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
