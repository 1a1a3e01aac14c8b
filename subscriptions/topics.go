package subscriptions

import (
	"context"
	"fmt"
	"slices"
)

// KlaviyoTopics are the system webhook topics Klaviyo documents (its
// "Topic ID table"); every account's catalog contains them, whatever the
// stream has carried so far. Callers must not modify the slice.
var KlaviyoTopics = []string{
	"event:klaviyo.bounced_email",
	"event:klaviyo.bounced_push",
	"event:klaviyo.clicked_email",
	"event:klaviyo.clicked_sms",
	"event:klaviyo.dropped_email",
	"event:klaviyo.failed_to_deliver_sms",
	"event:klaviyo.manually_suppressed_from_email_marketing",
	"event:klaviyo.manually_unsuppressed_from_email_marketing",
	"event:klaviyo.marked_email_as_spam",
	"event:klaviyo.opened_email",
	"event:klaviyo.opened_push",
	"event:klaviyo.ready_to_review",
	"event:klaviyo.received_email",
	"event:klaviyo.received_push",
	"event:klaviyo.received_sms",
	"event:klaviyo.sent_sms",
	"event:klaviyo.submitted_rating",
	"event:klaviyo.submitted_review",
	"event:klaviyo.subscribed_to_email_marketing",
	"event:klaviyo.subscribed_to_sms_marketing",
	"event:klaviyo.unsubscribed_from_email_marketing",
	"event:klaviyo.unsubscribed_from_sms_marketing",
	"event:klaviyo.updated_email_preferences",
}

// isKlaviyoTopic reports whether topic is built in. KlaviyoTopics is
// sorted, so a binary search suffices.
func isKlaviyoTopic(topic string) bool {
	_, ok := slices.BinarySearch(KlaviyoTopics, topic)
	return ok
}

// Topics returns the account's topic catalog, sorted: the built-in
// Klaviyo topics plus every topic seen on the stream for the account.
func (s *Store) Topics(ctx context.Context, account string) ([]string, error) {
	seen, err := s.rdb.SMembers(ctx, keyTopics(account)).Result()
	if err != nil {
		return nil, fmt.Errorf("subscriptions: topics: %w", err)
	}
	all := append(slices.Clone(KlaviyoTopics), seen...)
	slices.Sort(all)
	return slices.Compact(all), nil
}

// HasTopic reports whether topic is in the account's catalog.
func (s *Store) HasTopic(ctx context.Context, account, topic string) (bool, error) {
	if isKlaviyoTopic(topic) {
		return true, nil
	}
	if topic == "" {
		return false, nil
	}
	ok, err := s.rdb.SIsMember(ctx, keyTopics(account), topic).Result()
	if err != nil {
		return false, fmt.Errorf("subscriptions: has topic: %w", err)
	}
	return ok, nil
}

// AddTopics adds topics seen on the stream to the account's catalog.
// Built-in topics and empty strings are skipped; the set only grows (a
// topic that stops appearing stays subscribable).
func (s *Store) AddTopics(ctx context.Context, account string, topics ...string) error {
	var add []any
	for _, t := range topics {
		if t != "" && !isKlaviyoTopic(t) {
			add = append(add, t)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := s.rdb.SAdd(ctx, keyTopics(account), add...).Err(); err != nil {
		return fmt.Errorf("subscriptions: add topics: %w", err)
	}
	return nil
}

// AddTopicsMany is AddTopics for several accounts in one round trip
// (a pipeline): the partition runners note new topics in bursts, one
// per new subject, and traffic over thousands of accounts would
// otherwise cost one Redis round trip each.
func (s *Store) AddTopicsMany(ctx context.Context, byAccount map[string][]string) error {
	pipe := s.rdb.Pipeline()
	for account, topics := range byAccount {
		var add []any
		for _, t := range topics {
			if t != "" && !isKlaviyoTopic(t) {
				add = append(add, t)
			}
		}
		if len(add) > 0 {
			pipe.SAdd(ctx, keyTopics(account), add...)
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("subscriptions: add topics: %w", err)
	}
	return nil
}

// checkTopics validates topics against the account's catalog and returns
// them sorted and unique. The first topic not in the catalog is returned
// as a *TopicError with its index in the request. The account's seen set
// is read only when a topic is not built in.
func (s *Store) checkTopics(ctx context.Context, account string, topics []string) ([]string, error) {
	var seen map[string]bool
	for i, t := range topics {
		if isKlaviyoTopic(t) {
			continue
		}
		if seen == nil {
			members, err := s.rdb.SMembers(ctx, keyTopics(account)).Result()
			if err != nil {
				return nil, fmt.Errorf("subscriptions: topics: %w", err)
			}
			seen = make(map[string]bool, len(members))
			for _, m := range members {
				seen[m] = true
			}
		}
		if t == "" || !seen[t] {
			return nil, &TopicError{Index: i, Topic: t}
		}
	}
	out := slices.Clone(topics)
	if out == nil {
		out = []string{}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
