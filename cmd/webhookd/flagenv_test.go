package main

import (
	"io"
	"strings"
	"testing"
)

// redactURL hides every password and nats token, also in comma lists,
// and leaves other values alone.
func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"redis://:s3cret@host:6379/0", "redis://:xxxxx@host:6379/0"},
		{"rediss://user:s3cret@host:6380", "rediss://user:xxxxx@host:6380"},
		{"nats://user:s3cret@a:4222,nats://user:s3cret@b:4222", "nats://user:xxxxx@a:4222,nats://user:xxxxx@b:4222"},
		{"nats://s3cret@host:4222", "nats://xxxxx@host:4222"},
		{"redis://host:6379", "redis://host:6379"},
		{"unix:///tmp/redis.sock", "unix:///tmp/redis.sock"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
		{"", ""},
	} {
		got := redactURL(tt.in)
		if got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q shows the secret", tt.in, got)
		}
	}
}

// A password in a URL flag never reaches an error message, whether the
// URL fails to parse as a flag value or fails validation, from a flag or
// from the environment.
func TestServeErrorsHideSecrets(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"--redis-url", "redis://:s3cret@host:notaport"}},
		{env: map[string]string{"WEBHOOKD_REDIS_URL": "redis://:s3cret@host:notaport"}},
		{args: []string{"--redis-url", "http://:s3cret@host"}},
		{env: map[string]string{"WEBHOOKD_NATS_SYNC_ALWAYS": "nats://:s3cret@host"}}, // not a bool: quoted in the error
	} {
		_, err := parseServeConfig(tt.args, env(tt.env), io.Discard)
		if err == nil {
			t.Errorf("parseServeConfig(%q, %v) = nil, want an error", tt.args, tt.env)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("parseServeConfig(%q, %v) = %v: shows the password", tt.args, tt.env, err)
		}
	}
}

func TestByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		str  string
	}{
		{"4194304", 4 << 20, "4MiB"},
		{"4MiB", 4 << 20, "4MiB"},
		{"512KiB", 512 << 10, "512KiB"},
		{"512 ki", 512 << 10, "512KiB"},
		{"1MB", 1_000_000, "1000000"},
		{"1.5k", 1500, "1500"},
		{"2G", 2_000_000_000, "1953125KiB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"1000", 1000, "1000"},
	} {
		var b byteSize
		if err := b.Set(tt.in); err != nil || int64(b) != tt.want || b.String() != tt.str {
			t.Errorf("Set(%q) = %d (%s), %v; want %d (%s)", tt.in, int64(b), b.String(), err, tt.want, tt.str)
		}
	}
	for _, in := range []string{"", "MiB", "4XB", "1e3", "-1", "99999999999GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = nil (%d), want an error", in, int64(b))
		}
	}
}
