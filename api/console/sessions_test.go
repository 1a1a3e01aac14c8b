package console_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/webhookd/webhookd/api/console"
	"github.com/webhookd/webhookd/test/harness"
)

func TestRedisSessions(t *testing.T) {
	ctx := context.Background()
	rdb := harness.StartRedis(t).Client(t)
	rs := console.NewRedisSessions(rdb)
	s := console.Session{Account: accountA, CSRF: "csrf-token"}
	token, err := rs.Create(ctx, s, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rs.Create(ctx, s, time.Hour)
	if err != nil || other == token || len(token) < 40 {
		t.Fatalf("tokens %q and %q (%v): want two different long random tokens", token, other, err)
	}
	got, err := rs.Get(ctx, token)
	if err != nil || got != s {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, s)
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, token) {
			t.Errorf("Redis key %q holds the token itself", k)
		}
		ttl, err := rdb.PTTL(ctx, k).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Errorf("key %s expires in %v (%v), want within the session's hour", k, ttl, err)
		}
	}
	op, err := rs.Create(ctx, console.Session{Operator: true, CSRF: "c2"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rs.Get(ctx, op); err != nil || !got.Operator || got.Account != "" {
		t.Errorf("operator session = %+v, %v", got, err)
	}
	if err := rs.Delete(ctx, token); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{token, "", "unknown"} {
		if _, err := rs.Get(ctx, tok); !errors.Is(err, console.ErrNoSession) {
			t.Errorf("Get(%q) = %v, want ErrNoSession", tok, err)
		}
	}
	short, err := rs.Create(ctx, s, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := rs.Get(ctx, short); errors.Is(err, console.ErrNoSession) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a session outlived its lifetime by 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
