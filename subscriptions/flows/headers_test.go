package flows

import (
	"errors"
	"testing"
)

// Two headers whose names differ only in case are one header on the
// wire; which value would be sent is undefined, so both are refused.
func TestValidateHeadersRefusesCaseTwins(t *testing.T) {
	err := ValidateHeaders(map[string]string{"X-Shop-Token": "a", "x-shop-token": "b"})
	var he *HeaderError
	if !errors.As(err, &he) {
		t.Fatalf("ValidateHeaders(case twins) = %v, want a HeaderError", err)
	}
	if he.Name != "x-shop-token" {
		t.Errorf("refused header = %q, want x-shop-token", he.Name)
	}
	if err := ValidateHeaders(map[string]string{"X-Shop-Token": "a", "X-Other": "b"}); err != nil {
		t.Errorf("ValidateHeaders(two headers) = %v, want nil", err)
	}
}
