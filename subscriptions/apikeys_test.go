package subscriptions

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseKeysLookup(t *testing.T) {
	k, err := ParseKeys([]string{"pk_alpha=acme", " pk_beta=acme ", "pk_gamma=other-1", "pk=with=eq=shop_2"})
	if err != nil {
		t.Fatal(err)
	}
	if k.Len() != 4 {
		t.Errorf("Len() = %d, want 4", k.Len())
	}
	tests := []struct {
		key, account string
		ok           bool
	}{
		{"pk_alpha", "acme", true},
		{"pk_beta", "acme", true},
		{"pk_gamma", "other-1", true},
		{"pk=with=eq", "shop_2", true},
		{"pk_alph", "", false},
		{"pk_alphaa", "", false},
		{"PK_ALPHA", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		if acct, ok := k.Lookup(tt.key); acct != tt.account || ok != tt.ok {
			t.Errorf("Lookup(%q) = %q, %v, want %q, %v", tt.key, acct, ok, tt.account, tt.ok)
		}
	}
	empty, err := ParseKeys(nil)
	if err != nil || empty.Len() != 0 {
		t.Fatalf("ParseKeys(nil) = %v, %v", empty, err)
	}
	if acct, ok := empty.Lookup("x"); ok || acct != "" {
		t.Errorf("Lookup on an empty keyring = %q, %v, want not found", acct, ok)
	}
}

func TestParseKeysErrors(t *testing.T) {
	const secret = "pk_SuperSecretValue123"
	tests := []struct {
		entries []string
		want    string // in the message
	}{
		{[]string{"a=acct", secret}, "entry 2"},
		{[]string{secret + "="}, "entry 1"},
		{[]string{"=acct"}, "empty key"},
		{[]string{secret + "=bad.account"}, "entry 1"},
		{[]string{secret + "=has space"}, "entry 1"},
		{[]string{secret + "={x}"}, "entry 1"},
		{[]string{"pk_x y=acct"}, "white space"},
		{[]string{"a=acct", secret + "=acct", secret + "=other"}, "entry 3"},
	}
	for _, tt := range tests {
		_, err := ParseKeys(tt.entries)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseKeys(%d entries) = %v, want ErrInvalid", len(tt.entries), err)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseKeys() error = %q, want it to contain %q", err, tt.want)
		}
		if strings.Contains(err.Error(), "Secret") || strings.Contains(err.Error(), "pk_x") {
			t.Errorf("ParseKeys() error = %q leaks the key", err)
		}
	}
}

func TestNewKeyring(t *testing.T) {
	k, err := NewKeyring(map[string]string{"k1": "a", "k2": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if acct, ok := k.Lookup("k2"); !ok || acct != "b" {
		t.Errorf("Lookup(k2) = %q, %v, want b", acct, ok)
	}
	if _, err := NewKeyring(map[string]string{"k1": ""}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewKeyring(empty account) = %v, want ErrInvalid", err)
	}
	if _, err := NewKeyring(map[string]string{"": "a"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewKeyring(empty key) = %v, want ErrInvalid", err)
	}
}

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 2000 {
		k := GenerateKey()
		if len(k) != 37 || !strings.HasPrefix(k, "pk_") {
			t.Fatalf("GenerateKey() = %d bytes, want pk_ + 34", len(k))
		}
		for _, r := range k[3:] {
			if !strings.ContainsRune(keyAlphabet, r) {
				t.Fatalf("GenerateKey() has %q, want alphanumerics only", r)
			}
			counts[r]++
		}
		if seen[k] {
			t.Fatal("GenerateKey() repeated a key")
		}
		seen[k] = true
	}
	// 68,000 characters over 62 symbols: about 1,097 each.
	for _, r := range keyAlphabet {
		if c := counts[r]; c < 850 || c > 1350 {
			t.Errorf("GenerateKey() drew %q %d times, want about 1097", r, c)
		}
	}
	k, err := ParseKeys([]string{GenerateKey() + "=default"})
	if err != nil || k.Len() != 1 {
		t.Errorf("ParseKeys(generated) = %v, want accepted", err)
	}
}

func BenchmarkLookup(b *testing.B) {
	keys := map[string]string{}
	for i := range 16 {
		keys[GenerateKey()] = fmt.Sprint("acct", i)
	}
	k, err := NewKeyring(keys)
	if err != nil {
		b.Fatal(err)
	}
	probe := GenerateKey()
	for b.Loop() {
		k.Lookup(probe)
	}
}

func ExampleKeyring_Lookup() {
	k, err := ParseKeys([]string{"pk_example=acme"})
	if err != nil {
		panic(err)
	}
	fmt.Println(k.Lookup("pk_example"))
	fmt.Println(k.Lookup("pk_wrong"))
	// Output:
	// acme true
	//  false
}
