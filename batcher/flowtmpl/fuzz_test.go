package flowtmpl

import (
	"errors"
	"testing"
	"time"
)

// FuzzTemplate parses and renders arbitrary templates over the sample
// event under small budgets: nothing panics, every failure is an *Error,
// and no output exceeds its cap.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{`{"e": "{{ person.email }}", "n": {{ event.value * 2 }}}`,
		`{% for i in event.Items %}{{ i.SKU|upper }}{% empty %}x{% endfor %}`,
		`{% if person|lookup:'VIP' %}{{ event.ItemNames|join:"," }}{% endif %}`, `{{ "x"|ljust:99 }}`, `{% verbatim %}{{{% endverbatim %}`} {
		f.Add(s)
	}
	ev, err := ParseEvent([]byte(sampleEvent))
	if err != nil {
		f.Fatal(err)
	}
	data := ev.Context(Organization{Name: "o"})
	lim := Limits{MaxOutputBytes: 4096, MaxIterations: 200, MaxRenderTime: 50 * time.Millisecond}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src, lim)
		var fe *Error
		if err != nil {
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error %v is not an *Error", err)
			}
			return
		}
		out, err := tpl.Render(data)
		if err != nil && !errors.As(err, &fe) {
			t.Fatalf("Render error %v is not an *Error", err)
		}
		if len(out) > lim.MaxOutputBytes {
			t.Fatalf("output of %d bytes over the %d cap", len(out), lim.MaxOutputBytes)
		}
	})
}
