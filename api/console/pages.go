package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// pages holds one template set per page, each the layout plus the page,
// and the fragments console.js polls (defined inside the page files).
type pages struct {
	sets map[string]*template.Template
}

// funcs are the helpers templates may call.
var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"iso":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"list": func(s ...string) []string { return s },
	// dur is a duration to three significant places or so: 554µs, 12.35ms.
	"dur": func(d time.Duration) time.Duration {
		if d < time.Millisecond {
			return d.Round(time.Microsecond)
		}
		return d.Round(10 * time.Microsecond)
	},
	// formtime is t as a datetime-local input's value, UTC.
	"formtime": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02T15:04")
	},
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{sets: map[string]*template.Template{}}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, err
		}
		p.sets[name] = t
	}
	return p, nil
}

// view is what every page template gets.
type view struct {
	Title   string
	Nav     string // which navigation entry is current
	Viewer  *viewer
	CSRF    string
	Poll    int // milliseconds between refreshes of live parts
	Version string
	Data    any
}

// render writes page name (its layout) with data; a template error is a
// bug, logged once, and the viewer gets a plain 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, data any) {
	c.renderView(w, r, status, name, "layout.html", view{Data: data, Version: c.cfg.Version, Poll: int(c.cfg.Poll / time.Millisecond)})
}

// renderPage writes a signed-in page.
func (c *Console) renderPage(w http.ResponseWriter, r *http.Request, v *viewer, name, title, nav string, data any) {
	c.renderPageStatus(w, r, http.StatusOK, v, name, title, nav, data)
}

// renderPageStatus writes a signed-in page with status.
func (c *Console) renderPageStatus(w http.ResponseWriter, r *http.Request, status int, v *viewer, name, title, nav string, data any) {
	c.renderView(w, r, status, name, "layout.html", view{Title: title, Nav: nav, Viewer: v, CSRF: v.CSRF,
		Data: data, Version: c.cfg.Version, Poll: int(c.cfg.Poll / time.Millisecond)})
}

// renderFragment writes the named fragment of page set name.
func (c *Console) renderFragment(w http.ResponseWriter, r *http.Request, v *viewer, set, fragment string, data any) {
	c.renderView(w, r, http.StatusOK, set, fragment, view{Viewer: v, CSRF: v.CSRF, Data: data, Version: c.cfg.Version,
		Poll: int(c.cfg.Poll / time.Millisecond)})
}

func (c *Console) renderView(w http.ResponseWriter, r *http.Request, status int, set, tmpl string, v view) {
	t, ok := c.pages.sets[set]
	var buf bytes.Buffer
	err := fmt.Errorf("no template set %q", set)
	if ok {
		err = t.ExecuteTemplate(&buf, tmpl, v)
	}
	if err != nil {
		c.cfg.Log.Error().Err(err).Str("path", r.URL.Path).Msg("console template failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage renders a message with status; v may be nil (signed out).
func (c *Console) errorPage(w http.ResponseWriter, r *http.Request, v *viewer, status int, msg string) {
	vw := view{Title: http.StatusText(status), Viewer: v, Version: c.cfg.Version,
		Data: map[string]any{"Status": status, "Message": msg}}
	if v != nil {
		vw.CSRF = v.CSRF
	}
	c.renderView(w, r, status, "error", "layout.html", vw)
}
