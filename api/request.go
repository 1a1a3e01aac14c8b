package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/webhookd/webhookd/subscriptions"
)

// rawDocument is a request document with the attributes and relationships
// of its primary data kept raw, so that absent, null and wrongly typed
// members can be told apart and each fault reported with its pointer.
// Unknown members are ignored (some clients send enabled on create).
type rawDocument struct {
	Data *struct {
		Type          *string                    `json:"type"`
		ID            *string                    `json:"id"`
		Attributes    map[string]json.RawMessage `json:"attributes"`
		Relationships map[string]json.RawMessage `json:"relationships"`
	} `json:"data"`
}

// parseDocument unmarshals body and checks that data.type is "webhook":
// a body that is not JSON is a parse error, a wrong type a 409 conflict
// (JSON:API).
func parseDocument(body []byte) (rawDocument, error) { return parseTyped(body, "webhook") }

// parseTyped is parseDocument for any resource type. A body that is not
// JSON is a parse error that says where (line, column and byte offset).
func parseTyped(body []byte, typ string) (rawDocument, error) {
	var doc rawDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			ptr := "/data"
			if typeErr.Field != "" {
				ptr = "/" + strings.ReplaceAll(typeErr.Field, ".", "/")
			}
			return doc, invalid(ptr, "Expected "+jsonKind(typeErr.Type.Kind().String())+", got JSON "+typeErr.Value+".")
		}
		return doc, parseError("The request body is not valid JSON: " + syntaxDetail(body, err) + ".")
	}
	switch {
	case doc.Data == nil:
		return doc, invalid("/data", "data is required and must be an object.")
	case doc.Data.Type == nil:
		return doc, invalid("/data/type", "data.type is required.")
	case *doc.Data.Type != typ:
		return doc, conflict("/data/type", "data.type must be \""+typ+"\".")
	}
	return doc, nil
}

// syntaxDetail says where body stops being JSON: the decoder's message
// (which quotes at most the one offending character) and the line,
// column (both from 1) and byte offset (from 0) of the offending byte,
// or of the end for a body cut short.
func syntaxDetail(body []byte, err error) string {
	pos, msg := len(body), "unexpected end of JSON input"
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		msg = strings.TrimPrefix(syn.Error(), "json: ")
		if syn.Offset > 0 && syn.Offset <= int64(len(body)) && !strings.Contains(msg, "end of JSON input") {
			pos = int(syn.Offset) - 1 // Offset counts the offending byte
		}
	}
	line := 1 + bytes.Count(body[:pos], []byte("\n"))
	col := pos - bytes.LastIndexByte(body[:pos], '\n')
	return fmt.Sprintf("%s at line %d, column %d (byte offset %d)", msg, line, col, pos)
}

// jsonKind names a Go kind the way a JSON user would.
func jsonKind(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return kind
}

// parseCreate decodes and validates a WebhookCreateQuery, reporting every
// faulty field. The AccountID of the result is left for the caller.
func parseCreate(body []byte, allowInsecure bool) (subscriptions.NewWebhook, error) {
	doc, err := parseDocument(body)
	if err != nil {
		return subscriptions.NewWebhook{}, err
	}
	var errs errorList
	a := attributes{raw: doc.Data.Attributes, errs: &errs}
	var nw subscriptions.NewWebhook
	a.required("name", "endpoint_url", "secret_key")
	if name, ok := a.str("name"); ok {
		nw.Name = a.nonEmpty("name", name)
	}
	if d, ok := a.str("description"); ok {
		nw.Description = &d
	}
	if u, ok := a.str("endpoint_url"); ok {
		nw.EndpointURL = a.endpoint(u, allowInsecure)
	}
	if secret, ok := a.str("secret_key"); ok {
		nw.Secret = a.nonEmpty("secret_key", secret)
	}
	if topics, ok := parseTopics(doc.Data.Relationships, &errs); ok {
		nw.Topics = topics
	} else if !hasMember(doc.Data.Relationships, "webhook-topics") {
		errs = append(errs, invalid("/data/relationships/webhook-topics/data", "relationships.webhook-topics.data is required."))
	}
	return nw, errs.err()
}

// parsePatch decodes and validates a WebhookPartialUpdateQuery for the
// webhook id of the path. Absent members stay unchanged, and so do null
// ones, except description: null clears it.
func parsePatch(body []byte, id string, allowInsecure bool) (subscriptions.Patch, error) {
	doc, err := parseDocument(body)
	if err != nil {
		return subscriptions.Patch{}, err
	}
	switch {
	case doc.Data.ID == nil:
		return subscriptions.Patch{}, invalid("/data/id", "data.id is required.")
	case *doc.Data.ID != id:
		return subscriptions.Patch{}, conflict("/data/id", "data.id does not match the id in the path.")
	}
	var errs errorList
	a := attributes{raw: doc.Data.Attributes, errs: &errs}
	var p subscriptions.Patch
	if name, ok := a.str("name"); ok {
		name = a.nonEmpty("name", name)
		p.Name = &name
	}
	if raw, ok := doc.Data.Attributes["description"]; ok {
		p.SetDescription = true
		if d, ok := a.str("description"); ok {
			p.Description = &d
		} else if !isNull(raw) {
			p.SetDescription = false // a type error, already recorded
		}
	}
	if u, ok := a.str("endpoint_url"); ok {
		u = a.endpoint(u, allowInsecure)
		p.EndpointURL = &u
	}
	if secret, ok := a.str("secret_key"); ok {
		secret = a.nonEmpty("secret_key", secret)
		p.Secret = &secret
	}
	if enabled, ok := a.bool("enabled"); ok {
		p.Enabled = &enabled
	}
	if topics, ok := parseTopics(doc.Data.Relationships, &errs); ok {
		p.Topics = &topics
	}
	return p, errs.err()
}

// attributes reads members of data.attributes, recording faults in errs.
type attributes struct {
	raw  map[string]json.RawMessage
	errs *errorList
}

func (a attributes) pointer(name string) string { return "/data/attributes/" + name }

// required records an error for each of names that is absent or null.
func (a attributes) required(names ...string) {
	for _, name := range names {
		if raw, ok := a.raw[name]; !ok || isNull(raw) {
			*a.errs = append(*a.errs, invalid(a.pointer(name), name+" is required."))
		}
	}
}

// str returns the string member name; ok is false when it is absent,
// null or (recorded as an error) not a string.
func (a attributes) str(name string) (v string, ok bool) {
	raw, present := a.raw[name]
	if !present || isNull(raw) {
		return "", false
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		*a.errs = append(*a.errs, invalid(a.pointer(name), name+" must be a string."))
		return "", false
	}
	return v, true
}

// bool returns the boolean member name, like str.
func (a attributes) bool(name string) (v bool, ok bool) {
	raw, present := a.raw[name]
	if !present || isNull(raw) {
		return false, false
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		*a.errs = append(*a.errs, invalid(a.pointer(name), name+" must be a boolean."))
		return false, false
	}
	return v, true
}

// nonEmpty records an error when v is blank and returns v.
func (a attributes) nonEmpty(name, v string) string {
	if strings.TrimSpace(v) == "" {
		*a.errs = append(*a.errs, invalid(a.pointer(name), name+" must not be empty."))
	}
	return v
}

// endpoint records an error when ValidateEndpoint refuses u and returns u.
func (a attributes) endpoint(u string, allowInsecure bool) string {
	if err := subscriptions.ValidateEndpoint(u, allowInsecure); err != nil {
		*a.errs = append(*a.errs, invalid(a.pointer("endpoint_url"), endpointDetail(err)))
	}
	return u
}

// parseTopics reads relationships.webhook-topics.data, a list of
// {"type":"webhook-topic","id":…}; ok is false when the relationship is
// absent or faulty. The ids keep the request's order so that the store's
// TopicError.Index points into the request; whether each id is in the
// account's catalog is checked later.
func parseTopics(rels map[string]json.RawMessage, errs *errorList) (ids []string, ok bool) {
	const ptr = "/data/relationships/webhook-topics"
	raw, present := rels["webhook-topics"]
	if !present {
		return nil, false
	}
	var rel struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &rel); err != nil || isNull(raw) {
		*errs = append(*errs, invalid(ptr, "webhook-topics must be an object with a data array."))
		return nil, false
	}
	var items []json.RawMessage
	if len(rel.Data) == 0 || isNull(rel.Data) || json.Unmarshal(rel.Data, &items) != nil {
		*errs = append(*errs, invalid(ptr+"/data", "webhook-topics.data must be an array of webhook-topic identifiers."))
		return nil, false
	}
	if len(items) == 0 {
		*errs = append(*errs, invalid(ptr+"/data", "A webhook needs at least one topic."))
		return nil, false
	}
	n := len(*errs)
	ids = make([]string, 0, len(items))
	for i, item := range items {
		var ident struct {
			Type *string `json:"type"`
			ID   *string `json:"id"`
		}
		itemPtr := ptr + "/data/" + strconv.Itoa(i)
		switch {
		case json.Unmarshal(item, &ident) != nil || isNull(item):
			*errs = append(*errs, invalid(itemPtr, "Expected a webhook-topic identifier {type, id}."))
		case ident.Type == nil || *ident.Type != "webhook-topic":
			*errs = append(*errs, invalid(itemPtr+"/type", "type must be \"webhook-topic\"."))
		case ident.ID == nil || *ident.ID == "":
			*errs = append(*errs, invalid(itemPtr+"/id", "id is required."))
		default:
			ids = append(ids, *ident.ID)
		}
	}
	return ids, len(*errs) == n
}

func hasMember(m map[string]json.RawMessage, name string) bool {
	_, ok := m[name]
	return ok
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
