package batcher

import "errors"

// Reason returns the reason code for err, an error of this package (or
// one wrapping it): the last token of the dead-letter subject an event is
// set aside on, and its Webhookd-Reason-Code header. Codes are stable
// lower-case snake_case words, valid as NATS subject tokens:
//
//	ErrNotJSON      not_json
//	ErrNotUTF8      not_utf8
//	ErrTooDeep      too_deep
//	ErrNumberRange  number_range
//	ErrNotObject    not_object
//	ErrNoID         no_id
//	ErrTooLarge     too_large
//
// Reason returns "invalid" for any other error, and "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "invalid"
}

// reasons lists the codes of Reason; the dispatcher's dead-letter
// subjects and operators' alerts depend on them, so they never change.
var reasons = [...]struct {
	err  error
	code string
}{
	{ErrNotJSON, "not_json"},
	{ErrNotUTF8, "not_utf8"},
	{ErrTooDeep, "too_deep"},
	{ErrNumberRange, "number_range"},
	{ErrNotObject, "not_object"},
	{ErrNoID, "no_id"},
	{ErrTooLarge, "too_large"},
}
