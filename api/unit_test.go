package api

import (
	"errors"
	"net/url"
	"testing"
)

func TestTruncateEndpoint(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://www.example.com/example/path", "https://www.example.com"},
		{"https://www.example.com", "https://www.example.com"},
		{"https://user:pw@example.com:8443/p?q=1#f", "https://example.com:8443"},
		{"https://example.com:443/p", "https://example.com"},
		{"http://example.com:80/p", "http://example.com"},
		{"http://127.0.0.1:9000/x", "http://127.0.0.1:9000"},
		{"https://[::1]:443/", "https://[::1]"},
		{"https://[::1]:8443/", "https://[::1]:8443"},
		{"not a url", ""},
	}
	for _, tt := range tests {
		if got := truncateEndpoint(tt.in); got != tt.want {
			t.Errorf("truncateEndpoint(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCredentials(t *testing.T) {
	tests := []struct {
		in, key string
		ok      bool
	}{
		{"Klaviyo-API-Key pk_1", "pk_1", true},
		{"klaviyo-api-key   pk_1 ", "pk_1", true},
		{"Bearer tok", "tok", true},
		{"bearer tok", "tok", true},
		{"", "", false},
		{"pk_1", "", false},
		{"Basic dXNlcjpwdw==", "", false},
		{"Klaviyo-API-Key", "", false},
		{"Klaviyo-API-Key ", "", false},
	}
	for _, tt := range tests {
		if key, ok := credentials(tt.in); key != tt.key || ok != tt.ok {
			t.Errorf("credentials(%q) = %q, %v, want %q, %v", tt.in, key, ok, tt.key, tt.ok)
		}
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw     string
		topics  bool
		include bool
		fields  []string // nil = all
		param   string   // parameter at fault, "" = ok
	}{
		{"", false, false, nil, ""},
		{"include=webhook-topics", false, true, nil, ""},
		{"include=webhook-topics,", false, true, nil, ""},
		{"include=", false, false, nil, ""},
		{"include=profiles", false, false, nil, "include"},
		{"include=webhook-topics", true, false, nil, "include"},
		{"fields[webhook]=name,endpoint_url", false, false, []string{"endpoint_url", "name"}, ""},
		{"fields%5Bwebhook%5D=name%2Cid", false, false, []string{"id", "name"}, ""},
		{"fields[webhook]=", false, false, []string{}, ""},
		{"fields[webhook]=secret_key", false, false, nil, "fields[webhook]"},
		{"fields[webhook-topic]=id", true, false, nil, ""},
		{"fields[webhook-topic]=name", true, false, nil, "fields[webhook-topic]"},
		{"revision=x&page[size]=5", false, false, nil, ""},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.raw)
		if err != nil {
			t.Fatal(err)
		}
		q, err := parseQuery(v, tt.topics)
		if tt.param != "" {
			var e errorList
			if !errors.As(err, &e) || e[0].parameter != tt.param {
				t.Errorf("parseQuery(%q) error = %v, want one about %s", tt.raw, err, tt.param)
			}
			continue
		}
		if err != nil || q.includeTopics != tt.include || (q.fields == nil) != (tt.fields == nil) || len(q.fields) != len(tt.fields) {
			t.Errorf("parseQuery(%q) = %+v, %v, want include %v fields %v", tt.raw, q, err, tt.include, tt.fields)
			continue
		}
		for _, f := range tt.fields {
			if !q.fields[f] {
				t.Errorf("parseQuery(%q).fields lacks %s", tt.raw, f)
			}
		}
	}
}
