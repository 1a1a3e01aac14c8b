package flowtmpl

import (
	"encoding/json"
	"errors"
	"testing"
)

// RenderSample returns what Validate checks: the sample event's values
// in the output, and Validate's errors.
func TestRenderSample(t *testing.T) {
	out, err := RenderSample(`{"email": "{{ person.email }}", "order": "{{ event.OrderId }}", "org": "{{ organization.name }}"}`,
		Limits{}, Organization{Name: "Shop"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(out, &got); err != nil || got["email"] != "ada@example.com" || got["order"] != "1001" || got["org"] != "Shop" {
		t.Errorf("RenderSample = %s (%v), want the sample's email and order id and the organization", out, err)
	}
	_, err = RenderSample(`{"n": {{ event.Quantity }}`, Limits{}, Organization{})
	if !errors.Is(err, ErrNotJSON) || !errors.Is(Validate(`{"n": {{ event.Quantity }}`, Limits{}, Organization{}), ErrNotJSON) {
		t.Errorf("RenderSample of a body missing its brace = %v, want ErrNotJSON as Validate says", err)
	}
	if _, err := ParseEvent([]byte(SampleEvent())); err != nil {
		t.Errorf("SampleEvent does not parse as an event: %v", err)
	}
}
