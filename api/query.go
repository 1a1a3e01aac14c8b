package api

import (
	"net/url"
	"strings"
)

// Query parameters of the JSON:API endpoints (comma-separated lists; the
// Node SDK leaves brackets and commas raw, Python quotes each element,
// url.ParseQuery reads both).
const (
	paramInclude     = "include"
	paramFieldsHook  = "fields[webhook]"
	paramFieldsTopic = "fields[webhook-topic]"
)

// webhookFields are the names fields[webhook] accepts: the attributes,
// and id (revision 2026-07-15), which is always present anyway.
var webhookFields = map[string]bool{
	"name": true, "description": true, "endpoint_url": true, "enabled": true,
	"created_at": true, "updated_at": true, "id": true,
}

// query is what the include and fields parameters ask for.
type query struct {
	includeTopics bool
	// fields is the sparse fieldset of webhooks; nil means every attribute.
	fields map[string]bool
}

// parseQuery reads include and the sparse fieldsets; topics says whether
// the endpoint serves only topics, which have no relationships.
func parseQuery(v url.Values, topics bool) (query, error) {
	var q query
	var errs errorList
	if vals, ok := v[paramInclude]; ok {
		for _, name := range list(vals) {
			if name != "webhook-topics" || topics {
				errs = append(errs, invalidParam(paramInclude, "Unknown include value \""+name+"\"; supported: webhook-topics."))
				continue
			}
			q.includeTopics = true
		}
	}
	if vals, ok := v[paramFieldsHook]; ok {
		q.fields = map[string]bool{}
		for _, name := range list(vals) {
			if !webhookFields[name] {
				errs = append(errs, invalidParam(paramFieldsHook, "Unknown webhook field \""+name+"\"."))
				continue
			}
			q.fields[name] = true
		}
	}
	for _, name := range list(v[paramFieldsTopic]) {
		if name != "id" {
			errs = append(errs, invalidParam(paramFieldsTopic, "Unknown webhook-topic field \""+name+"\"; supported: id."))
		}
	}
	return q, errs.err()
}

// list splits the comma-separated values of a parameter, dropping empty
// elements, so "a,b", "a&...=b" and "a," all mean [a b].
func list(vals []string) []string {
	var out []string
	for _, v := range vals {
		for e := range strings.SplitSeq(v, ",") {
			if e = strings.TrimSpace(e); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}
