package dispatcher

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

func TestSuccessful(t *testing.T) {
	for code := 100; code < 600; code++ {
		want := code == 200 || code == 201 || code == 202
		if got := Successful(code); got != want {
			t.Errorf("Successful(%d) = %v, want %v", code, got, want)
		}
	}
}

// The client follows no redirect, gives up after the delivery timeout and
// refuses non-public addresses after resolution; each is classified.
func TestClientOutcomes(t *testing.T) {
	redirect := httptest.NewServer(http.RedirectHandler("http://169.254.169.254/latest/meta-data", http.StatusFound))
	defer redirect.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedURL := "http://" + ln.Addr().String()
	ln.Close()

	insecure := &courier{client: newClient(Config{AllowInsecureEndpoints: true, DeliveryTimeout: 500 * time.Millisecond}.withDefaults())}
	guarded := &courier{client: newClient(Config{DeliveryTimeout: 500 * time.Millisecond}.withDefaults())}
	cases := []struct {
		name   string
		client *courier
		url    string
		want   outcome
	}{
		{"redirect not followed", insecure, redirect.URL, outcome{kind: kindStatus, status: 302}},
		{"timeout", insecure, slow.URL, outcome{kind: kindTimeout}},
		{"refused", insecure, refusedURL, outcome{kind: kindRefused}},
		{"loopback blocked", guarded, redirect.URL, outcome{kind: kindBlocked}},
		{"name resolving to loopback blocked", guarded, "http://localhost:1/", outcome{kind: kindBlocked}},
		{"mapped metadata address blocked", guarded, "http://[::ffff:169.254.169.254]:80/", outcome{kind: kindBlocked}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, tc.url, nil)
			if got := tc.client.do(req); got != tc.want {
				t.Errorf("do(POST %s) = %v, want %v", tc.url, got, tc.want)
			}
		})
	}
}

func TestGuardControl(t *testing.T) {
	for addr, blocked := range map[string]bool{
		"127.0.0.1:443": true, "[::1]:443": true, "10.1.2.3:443": true, "172.16.0.1:443": true,
		"192.168.1.1:443": true, "169.254.169.254:80": true, "100.64.0.1:443": true,
		"[::ffff:10.0.0.1]:443": true, "[fd00::1]:443": true, "0.0.0.0:80": true,
		"93.184.216.34:443": false, "[2606:2800:220:1::1]:443": false,
	} {
		err := guardControl(context.Background(), "tcp", addr, nil)
		if got := errors.Is(err, ErrBlockedAddress); got != blocked {
			t.Errorf("guardControl(%s) = %v, want blocked=%v", addr, err, blocked)
		}
	}
}

// Every outcome has an Observer label, and every label is in Outcomes.
func TestOutcomeLabels(t *testing.T) {
	cases := []struct {
		in   outcome
		want string
	}{
		{outcome{kind: kindOK, status: 200}, "success"},
		{outcome{kind: kindStatus, status: 204}, "status_2xx"},
		{outcome{kind: kindStatus, status: 302}, "status_3xx"},
		{outcome{kind: kindStatus, status: 404}, "status_4xx"},
		{outcome{kind: kindStatus, status: 503}, "status_5xx"},
		{outcome{kind: kindStatus, status: 999}, "network"},
		{outcome{kind: kindTimeout}, "timeout"},
		{outcome{kind: kindRefused}, "refused"},
		{outcome{kind: kindDNS}, "dns"},
		{outcome{kind: kindTLS}, "tls"},
		{outcome{kind: kindBlocked}, "blocked"},
		{outcome{kind: kindInvalid}, "invalid"},
		{outcome{kind: kindNetwork}, "network"},
		{outcome{kind: kindNotSent}, "not_sent"},
		{outcome{kind: kindInterrupted}, "interrupted"},
	}
	for _, c := range cases {
		got := c.in.label()
		if got != c.want {
			t.Errorf("%+v.label() = %q, want %q", c.in, got, c.want)
		}
		if c.in.kind != kindNotSent && c.in.kind != kindInterrupted && !slices.Contains(Outcomes, got) {
			t.Errorf("label %q is not in Outcomes", got)
		}
	}
}
