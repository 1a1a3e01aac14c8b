package main

import (
	"strings"
	"testing"

	"github.com/webhookd/webhookd/subscriptions"
)

func TestOperatorKeyring(t *testing.T) {
	accounts, err := subscriptions.ParseKeys([]string{"pk_account_key_123=acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key     string
		wantErr string
	}{
		{"op_operator_key_456", ""},
		{"pk_account_key_123", "also an account's API key"},
		{"has space", "white space"},
	} {
		op, err := operatorKeyring(tc.key, accounts)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("operatorKeyring(%q) = %v, want a keyring", tc.key, err)
				continue
			}
			if _, ok := op.Lookup(tc.key); !ok {
				t.Errorf("operatorKeyring(%q) does not accept its key", tc.key)
			}
			if _, ok := op.Lookup("pk_account_key_123"); ok {
				t.Error("the operator keyring accepts an account key")
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("operatorKeyring(%q) = %v, want an error about %q", tc.key, err, tc.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), tc.key) {
			t.Errorf("operatorKeyring's error quotes the key: %v", err)
		}
	}
}

func TestAdminKeyFromEnv(t *testing.T) {
	cfg, err := parseServeConfig(nil, func(k string) string {
		if k == "WEBHOOKD_ADMIN_KEY" {
			return "op_from_env_0123456789"
		}
		return ""
	}, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AdminKey != "op_from_env_0123456789" {
		t.Errorf("AdminKey = %q, want the WEBHOOKD_ADMIN_KEY value", cfg.AdminKey)
	}
}
