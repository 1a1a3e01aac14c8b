package dispatcher

import (
	"strings"
	"testing"
)

func TestCheckServerVersion(t *testing.T) {
	for _, tt := range []struct {
		version string
		want    string // in the error; empty: accepted
	}{
		{"2.10.4", ""},
		{"2.10.5", ""},
		{"2.10.22", ""},
		{"2.11.0", ""},
		{"2.11.0-beta", ""},
		{"2.12.0-RC.1", ""},
		{"v2.10.4", ""},
		{"2.10.4+build.7", ""},
		{"3.0.0", ""},
		{"2.9.10", "nats-server 2.9.10 is too old: webhookd needs 2.10.4 or newer"},
		{"2.10.3", "too old"},
		{"2.10.0", "too old"},
		{"2.10.4-beta", "too old"},
		{"1.99.99", "too old"},
		{"", "not a version"},
		{"garbage", "not a version"},
		{"2.10", "not a version"},
		{"2.10.x", "not a version"},
		{"2.10.4.1", "not a version"},
		{"2..4", "not a version"},
		{"2.-1.4", "not a version"},
	} {
		err := CheckServerVersion(tt.version)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckServerVersion(%q) = %v, want nil", tt.version, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckServerVersion(%q) = %v, want an error containing %q", tt.version, err, tt.want)
		}
	}
}

// MinServerVersion itself is a version the check accepts.
func TestMinServerVersionParses(t *testing.T) {
	if _, ok := parseVersion(MinServerVersion); !ok {
		t.Fatalf("parseVersion(%q) failed", MinServerVersion)
	}
	if err := CheckServerVersion(MinServerVersion); err != nil {
		t.Errorf("CheckServerVersion(MinServerVersion) = %v", err)
	}
}
