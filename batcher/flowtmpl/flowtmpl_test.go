package flowtmpl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func render(t *testing.T, src string, data map[string]any) string {
	t.Helper()
	tpl, err := Parse(src, Limits{})
	if err != nil {
		t.Fatalf("Parse(%q) = %v", src, err)
	}
	out, err := tpl.Render(data)
	if err != nil {
		t.Fatalf("Render(%q) = %v", src, err)
	}
	return string(out)
}

func sample(t *testing.T) map[string]any {
	t.Helper()
	ev, err := ParseEvent([]byte(sampleEvent))
	if err != nil {
		t.Fatal(err)
	}
	return ev.Context(Organization{Name: "Shop", URL: "https://shop.example"})
}

func TestRender(t *testing.T) {
	data := sample(t)
	data["neg"] = -1.2
	data["odd"] = map[string]any{"q": `say "hi" \ <b>&` + "\n\t\x01"}
	for _, tc := range []struct{ src, want string }{
		{`{{ event.value }}`, `59.5`},
		{`{{ event.Quantity }}`, `2`},
		{`{{ event.Quantity * 2 }}`, `4`},
		{`{{ event.value * 2 }}`, `119`},
		{`{{ event.value + 0.25 }}`, `59.75`},
		{`{{ event.value / 4 }}`, `14.875`},
		{`{{ person|lookup:'VIP' }}`, `true`},
		{`{{ person|lookup:'Loyalty Points' }}`, `120`},
		{`{{ event|lookup:'$value' }}`, `59.5`},
		{`{{ person|lookup:'Missing'|default:"none" }}`, `none`},
		{`{{ person.email }}`, `ada@example.com`},
		{`{{ person.id }}`, `01HSAMPLEPROFILE`},
		{`{{ person.location.city }}`, `London`},
		{`{{ event.id }}`, `4vRpBT5cNe8`},
		{`{{ organization.name }}`, `Shop`},
		{`{{ odd.q }}`, `say \"hi\" \\ <b>&\n\t\u0001`},
		{`{{ odd.q|safe }}`, "say \"hi\" \\ <b>&\n\t\x01"},
		{`{{ event.Quantity > 1 }}`, `true`},
		{`{{ event.nothing }}`, ``},
		{`{{ event.ItemNames }}`, `["Shirt","Socks"]`},
		{`{{ event.ItemNames|join:", " }}`, `Shirt, Socks`},
		{`{{ event.value|floatformat:2 }}`, `59.50`},
		{`{{ 3.0|floatformat }}`, `3`},
		{`{{ neg|abs }}`, `1.2`},
		{`{{ 1|at_least:5 }}`, `5`},
		{`{{ 5.01|ceil }}`, `6`},
		{`{{ 59.456|round:2 }}`, `59.46`},
		{`{{ "hello"|append:" world" }}`, `hello world`},
		{`{{ "ada"|capitalize }}`, `Ada`},
		{`{{ "ada@example.com"|base64_encode }}`, `YWRhQGV4YW1wbGUuY29t`},
		{`{{ "YWRh"|base64_decode }}`, `ada`},
		{`{{ 2|add:3 }}|{{ 2.5|add:1 }}|{{ "a"|add:"b" }}`, `5|3.5|ab`},
		{`{% if person|lookup:'Loyalty Points' > 100 %}vip{% else %}std{% endif %}`, `vip`},
		{`{% for i in event.Items %}{{ forloop.counter }}:{{ i.SKU }}{% if not forloop.last %},{% endif %}{% endfor %}`, `1:SH-1,2:SO-1`},
		{`{% for i in event.Nothing %}x{% empty %}none{% endfor %}`, `none`},
		{`{% for k, v in event.BillingAddress %}{% if k == "City" %}{{ v }}{% endif %}{% endfor %}`, `London`},
		{`{# {{ not printed }} #}ok`, `ok`},
		{`{% verbatim %}{{ raw }}{% endverbatim %}`, `{{ raw }}`},
		{`{% if "}}" == "}}" %}y{% endif %}`, `y`},
		{`{{- " a " -}}`, ` a `},
		{`{% with total=event.value %}{{ total }}{% endwith %}`, `59.5`},
	} {
		if got := render(t, tc.src, data); got != tc.want {
			t.Errorf("Render(%s) = %s, want %s", tc.src, got, tc.want)
		}
	}
}

// A body made of the usual parts renders to the JSON it means.
func TestRenderJSONBody(t *testing.T) {
	src := `{
  "email": "{{ person.email }}",
  "points": {{ person|lookup:'Loyalty Points'|default:0 }},
  "vip": {{ person|lookup:'VIP' }},
  "total": {{ event.value }},
  "double": {{ event.Quantity * 2 }},
  {% if event.DiscountCode %}"code": "{{ event.DiscountCode }}",{% endif %}
  "items": [{% for i in event.Items %}{"sku": "{{ i.SKU }}", "price": {{ i.ItemPrice }}}{% if not forloop.last %},{% endif %}{% endfor %}]
}`
	tpl, err := Parse(src, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.RenderJSON(sample(t))
	if err != nil {
		t.Fatalf("RenderJSON = %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := `{"double":4,"email":"ada@example.com","items":[{"price":49.5,"sku":"SH-1"},{"price":10,"sku":"SO-1"}],"points":120,"total":59.5,"vip":true}`
	if b, _ := json.Marshal(got); string(b) != want {
		t.Errorf("RenderJSON = %s, want %s", b, want)
	}
}

func TestBannedAndSyntax(t *testing.T) {
	for _, tc := range []struct {
		src  string
		line int
	}{
		{`{% include "x.json" %}`, 1},
		{`{% extends "base" %}`, 1},
		{`{% import "m" m %}`, 1},
		{"{\n\n{% ssi \"/etc/passwd\" %}", 3},
		{`{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}`, 1},
		{`{% filter upper %}x{% endfilter %}`, 1},
		{`{% spaceless %}x{% endspaceless %}`, 1},
		{`{% autoescape off %}x{% endautoescape %}`, 1},
		{`{% lorem 100000000 w %}`, 1},
		{`{{ 1|stringformat:"%999999999d" }}`, 1},
		{"ok\n{% if %}", 2},
		{"a\nb\n{{ person. }}", 3},
		{"{% for x in %}{% endfor %}", 1},
		{"{{ x|nosuchfilter }}", 1},
	} {
		_, err := Parse(tc.src, Limits{})
		var fe *Error
		if !errors.As(err, &fe) || !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want an ErrSyntax *Error", tc.src, err)
			continue
		}
		if fe.Line != tc.line {
			t.Errorf("Parse(%q) error line = %d (%v), want %d", tc.src, fe.Line, err, tc.line)
		}
	}
}

func TestBudgets(t *testing.T) {
	big := make([]any, 100_000)
	for i := range big {
		big[i] = i
	}
	data := map[string]any{"big": big, "s": strings.Repeat("x", 1000)}
	lim := Limits{MaxIterations: 1000, MaxOutputBytes: 10_000, MaxRenderTime: time.Second}
	for _, tc := range []struct{ name, src string }{
		{"iterations", `{% for a in big %}{% endfor %}`},
		{"nested iterations", `{% for a in big %}{% for b in big %}{% endfor %}{% endfor %}`},
		{"output of prints", `{% for a in big %}{{ s }}{% endfor %}`},
		{"output of text", `{% for a in big %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}`},
		{"one huge print", `{{ big }}`},
	} {
		tpl, err := Parse(tc.src, lim)
		if err != nil {
			t.Fatalf("%s: Parse = %v", tc.name, err)
		}
		_, err = tpl.Render(data)
		if !errors.Is(err, ErrBudget) {
			t.Errorf("%s: Render = %v, want ErrBudget", tc.name, err)
		}
	}

	// Render time: a loop of cheap iterations under a tiny time budget.
	tpl, err := Parse(`{% for a in big %}{% for b in big %}{% endfor %}{% endfor %}`,
		Limits{MaxIterations: 1 << 30, MaxRenderTime: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(data); !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("Render (time) = %v, want ErrBudget for time", err)
	}

	// Growing a string by doubling it is stopped by the value cap.
	tpl, err = Parse(`{% for a in big %}{% set s = s|add:s %}{% endfor %}{{ s|length }}`, Limits{MaxIterations: 1 << 20, MaxRenderTime: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(data); err == nil {
		t.Error("doubling a string 100,000 times rendered, want an error")
	}

	for _, src := range []string{`{{ "x"|ljust:1000000000 }}`, `{{ "x"|center:1000000000 }}`, `{{ 1.5|floatformat:1000000 }}`,
		`{{ big|join:s }}`} {
		tpl, err := Parse(src, Limits{})
		if err != nil {
			t.Fatalf("Parse(%s) = %v", src, err)
		}
		if _, err := tpl.Render(data); err == nil {
			t.Errorf("Render(%s) = nil error, want a refusal", src)
		}
	}

	if _, err := Parse(strings.Repeat("x", DefaultMaxTemplateBytes+1), Limits{}); !errors.Is(err, ErrBudget) {
		t.Errorf("Parse(oversized) = %v, want ErrBudget", err)
	}
}

// A panic inside the engine (integer division by zero) is an error.
func TestPanicRecovered(t *testing.T) {
	tpl, err := Parse(`{{ 1 / 0 }}{{ 5|divisibleby:0 }}`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(nil); !errors.Is(err, ErrRender) {
		t.Errorf("Render = %v, want ErrRender", err)
	}
}

func TestValidate(t *testing.T) {
	if err := Validate(`{"email": "{{ person.email }}", "total": {{ event.value }}}`, Limits{}, Organization{}); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	err := Validate(`{"email": {{ person.email }}}`, Limits{}, Organization{})
	if !errors.Is(err, ErrNotJSON) {
		t.Errorf("Validate(unquoted string) = %v, want ErrNotJSON", err)
	}
	err = Validate("{\n\"a\": {% if %}\n}", Limits{}, Organization{})
	var fe *Error
	if !errors.As(err, &fe) || fe.Line != 2 {
		t.Errorf("Validate(bad tag on line 2) = %v, want an error on line 2", err)
	}
}

func TestParseEvent(t *testing.T) {
	ev, err := ParseEvent([]byte(sampleEvent))
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "4vRpBT5cNe8" || ev.MetricID != "Rk7x2Q" || ev.ProfileID != "01HSAMPLEPROFILE" || ev.Email != "ada@example.com" {
		t.Errorf("ParseEvent = %+v", ev)
	}
	if _, err := ParseEvent([]byte(`[1,2]`)); !errors.Is(err, ErrEvent) {
		t.Errorf("ParseEvent(array) = %v, want ErrEvent", err)
	}
}

// Templates parse and render from many goroutines at once (run -race).
func TestConcurrent(t *testing.T) {
	data := sample(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			tpl, err := Parse(fmt.Sprintf(`{"n": %d, "e": "{{ person.email }}"}`, i), Limits{})
			if err != nil {
				t.Error(err)
				return
			}
			for range 20 {
				if _, err := tpl.RenderJSON(data); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// Every loop iteration reads the clock: one iteration's body can cost as
// much as the template's whole straight-line code (a chain of padding
// filters building 256 KiB values, say), so sampling the clock every
// 64th iteration let such a loop run 64 bodies past its budget (a
// 16 KiB template ran ~5 s against the 100 ms default). Here a render
// whose budget is already spent must stop at the first iteration of a
// short loop, before any body runs.
func TestRenderTimeCheckedEveryIteration(t *testing.T) {
	tpl, err := Parse(`{% for a in xs %}{{ a }}{% endfor %}`, Limits{MaxRenderTime: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.Render(map[string]any{"xs": []any{1, 2, 3}})
	if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("Render past its time budget = %q, %v; want ErrBudget for time", out, err)
	}
}

// Filters that grow their input each time they are applied cannot be
// chained past the value cap: addslashes doubles a run of quotes (2^n
// after n calls, so a 100-byte template could exhaust memory), escape,
// urlencode and linenumbers add a fixed amount per call, base64_encode
// a third (1.33^n); escapejs
// (six-fold, then nearly two-fold per call) is banned like the other
// HTML helpers. Each template here made a value over 256 KiB without
// an error.
func TestGrowingFiltersCapped(t *testing.T) {
	data := map[string]any{"pct": strings.Repeat("%", 100_000), "lines": strings.Repeat("\n", 50_000)}
	for _, src := range []string{
		`{{ "` + strings.Repeat(`\"`, 1000) + `"` + strings.Repeat("|addslashes", 10) + `|length }}`,
		`{{ "` + strings.Repeat("&", 2000) + `"` + strings.Repeat("|escape", 40) + `|length }}`,
		`{{ "` + strings.Repeat("&", 2000) + `"` + strings.Repeat("|e", 40) + `|length }}`,
		`{{ pct|urlencode|length }}`,
		`{{ lines|linenumbers|length }}`,
		`{{ pct` + strings.Repeat("|base64_encode", 5) + `|length }}`,
		`{{ pct` + strings.Repeat("|base64_url_safe_encode", 5) + `|length }}`,
	} {
		tpl, err := Parse(src, Limits{})
		if err != nil {
			t.Fatalf("Parse(%.60s…) = %v", src, err)
		}
		if out, err := tpl.Render(data); err == nil {
			t.Errorf("Render(%.60s…) = %s, want a refusal past the value cap", src, out)
		}
	}
	if _, err := Parse(`{{ "<"|escapejs }}`, Limits{}); !errors.Is(err, ErrSyntax) {
		t.Errorf("Parse(escapejs) = %v, want ErrSyntax (banned)", err)
	}
	// Small values are unchanged.
	tpl, err := Parse(`{{ "a&b <c> \"d\" 'e'"|escape|safe }} {{ "a b&c"|urlencode }} {{ "x\"y"|addslashes|safe }} {{ l|linenumbers|safe }}`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.Render(map[string]any{"l": "p\nq"})
	if want := `a&amp;b &lt;c&gt; &quot;d&quot; &#39;e&#39; a+b%26c x\"y 1. p` + "\n" + `2. q`; err != nil || string(out) != want {
		t.Errorf("Render = %q, %v; want %q", out, err, want)
	}
}

// Values bound by with and set stay alive for the rest of their block,
// so a 16 KiB template binding hundreds of 256 KiB strings (or lists
// made from them) held ~180 MB per render without breaking any budget;
// what with and set hold is now capped at four times the output budget.
func TestBoundValuesCapped(t *testing.T) {
	var with, set strings.Builder
	with.WriteString(`{% with s="a"|ljust:200000 %}{% with `)
	set.WriteString(`{% with s="a"|ljust:200000 %}`)
	for i := range 30 {
		fmt.Fprintf(&with, "v%d=s|add:%d ", i, i)
		fmt.Fprintf(&set, "{%% set v%d = s|add:%d %%}", i, i)
	}
	with.WriteString(`%}{}{% endwith %}{% endwith %}`)
	set.WriteString(`{}{% endwith %}`)
	for name, src := range map[string]string{"with": with.String(), "set": set.String(),
		"lists": `{% with s="a"|ljust:100000 %}{% with a=s|make_list b=s|make_list c=s|make_list %}{}{% endwith %}{% endwith %}`} {
		tpl, err := Parse(src, Limits{})
		if err != nil {
			t.Fatalf("%s: Parse = %v", name, err)
		}
		if _, err := tpl.Render(map[string]any{}); !errors.Is(err, ErrBudget) {
			t.Errorf("%s: Render = %v, want ErrBudget for held values", name, err)
		}
	}
	// Ordinary bindings, both with syntaxes, and set.
	tpl, err := Parse(`{% with n=person.name|upper %}{% with person.age as a %}{% set x = n|add:"!" %}{"n":"{{ x }}","a":{{ a }}}{% endwith %}{% endwith %}`, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := tpl.RenderJSON(map[string]any{"person": map[string]any{"name": "ada", "age": 36}})
	if err != nil || string(out) != `{"n":"ADA!","a":36}` {
		t.Errorf("Render = %s, %v", out, err)
	}
}
