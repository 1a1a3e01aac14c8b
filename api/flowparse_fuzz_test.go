package api

import (
	"testing"

	"github.com/webhookd/webhookd/subscriptions/flows"
)

// FuzzDecodeFlow feeds arbitrary bodies to the flow decoders: they never
// panic, and each either returns a definition that keeps every rule or
// JSON:API client errors pointing into the body.
func FuzzDecodeFlow(f *testing.F) {
	f.Add([]byte(`{"data":{"type":"flow","attributes":{"name":"n","definition":{"triggers":[{"type":"metric","id":"M"}],` +
		`"actions":[{"temporary_id":"a","type":"send-webhook","links":{"next":null},"data":{"status":"live","message":` +
		`{"url":"https://x.example/h","headers":{"X-A":"b"},"body":"{\"e\": \"{{ person.email }}\"}"}}}],"entry_action_id":"a"}}}}`))
	f.Add([]byte(`{"data":{"type":"flow","id":"F1","attributes":{"status":"live"}}}`))
	f.Add([]byte(`{"data":{"type":"flow-action","id":"F1","attributes":{"definition":{"type":"send-webhook","links":{"next":"x"},` +
		`"data":{"message":{"url":"https://x.example","body":"{}"}}}}}}`))
	s := &server{cfg: Config{}.withDefaults()}
	f.Fuzz(func(t *testing.T, body []byte) {
		if in, err := s.parseFlowCreate(body); err != nil {
			checkClientError(t, err)
		} else {
			checkFlow(t, in)
		}
		if st, err := parseFlowPatch(body, "F1"); err != nil {
			checkClientError(t, err)
		} else if !flows.ValidFlowStatus(st) {
			t.Fatalf("parseFlowPatch accepted status %q", st)
		}
		if p, err := s.parseActionPatch(body, "F1"); err != nil {
			checkClientError(t, err)
		} else if !flows.ValidActionStatus(p.status) || p.message.URL == "" {
			t.Fatalf("parseActionPatch accepted %+v", p)
		}
	})
}

func checkFlow(t *testing.T, in flowInput) {
	t.Helper()
	f := in.flow
	if blank(f.Name) || f.TriggerID == "" || len(f.Actions) == 0 || len(f.Actions) > maxFlowActions || len(in.temp) != len(f.Actions) {
		t.Fatalf("parseFlowCreate accepted %+v", in)
	}
	index := map[string]int{}
	for i, id := range in.temp {
		index[id] = i
	}
	seen := map[int]bool{}
	for cur, ok := index[f.EntryID]; ok; cur, ok = index[f.Actions[cur].Next] {
		if seen[cur] {
			t.Fatalf("accepted a cycle: %+v", in)
		}
		seen[cur] = true
		if f.Actions[cur].Next == "" {
			break
		}
	}
	if len(seen) != len(f.Actions) {
		t.Fatalf("accepted unreachable actions: %+v", in)
	}
	for _, a := range f.Actions {
		if !flows.ValidActionStatus(a.Status) || a.Message.URL == "" || flows.ValidateHeaders(a.Message.Headers) != nil {
			t.Fatalf("accepted action %+v", a)
		}
	}
}
