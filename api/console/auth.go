package console

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// sessionCookie holds the session token; loginCookie the token that
	// ties the sign-in form to the browser that loaded it (login CSRF).
	sessionCookie = "webhookd_console"
	loginCookie   = "webhookd_console_login"
	cookiePath    = "/console/"
	// operatorBucket is the operator's rate-limit bucket: not a valid
	// account id, so no account shares it.
	operatorBucket = "(operator)"
	// maxFormBytes caps a console form: a key, a CSRF token, a few fields.
	maxFormBytes = 16 << 10
)

// viewer is who is signed in.
type viewer struct {
	Session
	token string
}

// bucket is the rate-limit bucket the viewer spends from.
func (v *viewer) bucket() string {
	if v.Operator {
		return operatorBucket
	}
	return v.Account
}

// Who names the viewer for the page header.
func (v *viewer) Who() string {
	if v.Operator {
		return "operator (all accounts)"
	}
	return "account " + v.Account
}

// handlerFunc is a console handler of a signed-in viewer; its error
// becomes an error page through fail.
type handlerFunc func(w http.ResponseWriter, r *http.Request, v *viewer) error

// page serves a full page: without a session it sends the browser to the
// sign-in form.
func (c *Console) page(h handlerFunc) http.Handler {
	return c.signedIn(h, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, cookiePath, http.StatusSeeOther)
	})
}

// fragment serves a part of a page that console.js polls: without a
// session it answers 401, on which the script goes to the sign-in form.
func (c *Console) fragment(h handlerFunc) http.Handler {
	return c.signedIn(h, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "signed out", http.StatusUnauthorized)
	})
}

// action serves a state-changing form post: it needs a session, a
// same-origin request and the session's CSRF token.
func (c *Console) action(h handlerFunc) http.Handler { return c.actionSized(maxFormBytes, h) }

// actionSized is action for a form of up to limit bytes.
func (c *Console) actionSized(limit int64, h handlerFunc) http.Handler {
	return c.signedIn(func(w http.ResponseWriter, r *http.Request, v *viewer) error {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if !sameOrigin(r) || !validCSRF(r, v.CSRF) {
			return errCSRF
		}
		return h(w, r, v)
	}, func(w http.ResponseWriter, r *http.Request) {
		c.errorPage(w, r, nil, http.StatusForbidden, "You are signed out; sign in again and repeat the action.")
	})
}

// signedIn loads the session, spends a rate-limit token and runs h;
// anonymous runs when there is no session.
func (c *Console) signedIn(h handlerFunc, anonymous http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := c.session(r)
		if errors.Is(err, ErrNoSession) {
			anonymous(w, r)
			return
		}
		if err != nil {
			c.fail(w, r, nil, err)
			return
		}
		if c.cfg.Limiter != nil {
			if wait := c.cfg.Limiter.Take(v.bucket(), time.Now()); wait > 0 {
				c.fail(w, r, v, throttled(wait))
				return
			}
		}
		if err := h(w, r, v); err != nil {
			c.fail(w, r, v, err)
		}
	})
}

// session returns the viewer of r's session cookie.
func (c *Console) session(r *http.Request) (*viewer, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, ErrNoSession
	}
	s, err := c.cfg.Sessions.Get(r.Context(), ck.Value)
	if err != nil {
		return nil, err
	}
	return &viewer{Session: s, token: ck.Value}, nil
}

// signInPage is GET /console/: the sign-in form, or the webhooks page for
// a browser already signed in.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.session(r); err == nil {
		http.Redirect(w, r, cookiePath+"webhooks", http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, "")
}

// renderSignIn renders the form with a fresh login token in a cookie
// and in the form, so that only a form this browser loaded can sign it in.
func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, problem string) {
	token := randomToken()
	http.SetCookie(w, c.cookie(r, loginCookie, token, 10*time.Minute))
	c.render(w, r, status, "signin", map[string]any{
		"CSRF":       token,
		"Problem":    problem,
		"NeedsHTTPS": !secureContext(r),
		"Operator":   c.cfg.Operator != nil,
	})
}

// login is POST /console/login: it checks the key with the API's
// constant-time keyring (and the operator key), spends a token of the
// account's rate limit, and starts a session.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, nil, http.StatusBadRequest, "The form could not be read.")
		return
	}
	ck, err := r.Cookie(loginCookie)
	if !sameOrigin(r) || err != nil || !equalTokens(ck.Value, r.PostForm.Get("csrf")) {
		c.renderSignIn(w, r, http.StatusForbidden, "The sign-in form expired or came from another site; try again.")
		return
	}
	now := time.Now()
	if c.signInThrottled(w, r, now) {
		return
	}
	key := strings.TrimSpace(r.PostForm.Get("key"))
	// Both lookups run whatever the first says, so the time taken does
	// not tell an operator key from an account key.
	account, isAccount := c.cfg.Keys.Lookup(key)
	isOperator := false
	if c.cfg.Operator != nil {
		_, isOperator = c.cfg.Operator.Lookup(key)
	}
	if key == "" || !isAccount && !isOperator {
		if c.cfg.AuthLimit != nil {
			c.cfg.AuthLimit.Failed(r, now)
		}
		c.cfg.Log.Info().Msg("console sign-in refused: unknown key")
		c.renderSignIn(w, r, http.StatusUnauthorized, "That key is not valid.")
		return
	}
	s := Session{Account: account, CSRF: randomToken()}
	if isOperator {
		s = Session{Operator: true, CSRF: s.CSRF}
	}
	v := &viewer{Session: s}
	if c.cfg.Limiter != nil {
		if wait := c.cfg.Limiter.Take(v.bucket(), now); wait > 0 {
			c.fail(w, r, nil, throttled(wait))
			return
		}
	}
	token, err := c.cfg.Sessions.Create(r.Context(), s, c.cfg.SessionTTL)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	http.SetCookie(w, c.cookie(r, loginCookie, "", -1))
	http.SetCookie(w, c.cookie(r, sessionCookie, token, c.cfg.SessionTTL))
	c.cfg.Log.Info().Str("account_id", v.bucket()).Msg("console sign-in")
	http.Redirect(w, r, cookiePath+"webhooks", http.StatusSeeOther)
}

// signInThrottled answers the sign-in form with 429 when r's address
// presented too many bad keys. It runs before the key is checked, so
// the answer tells nothing about the key.
func (c *Console) signInThrottled(w http.ResponseWriter, r *http.Request, now time.Time) bool {
	if c.cfg.AuthLimit == nil {
		return false
	}
	wait := c.cfg.AuthLimit.Wait(r, now)
	if wait <= 0 {
		return false
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	c.renderSignIn(w, r, http.StatusTooManyRequests, fmt.Sprintf(
		"Too many sign-ins with a wrong key from your address; try again in %s.", time.Duration(secs)*time.Second))
	return true
}

// logout is POST /console/logout: the session is deleted in Redis, so
// the cookie is worthless on every replica at once.
func (c *Console) logout(w http.ResponseWriter, r *http.Request, v *viewer) error {
	if err := c.cfg.Sessions.Delete(r.Context(), v.token); err != nil {
		return err
	}
	http.SetCookie(w, c.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, cookiePath, http.StatusSeeOther)
	return nil
}

// cookie is a console cookie: HttpOnly, SameSite=Strict, scoped to
// /console/, and Secure unless the console is reached over plain http on
// a loopback address (browsers drop Secure cookies over plain http
// elsewhere, and the console must then be behind TLS). maxAge < 0
// deletes it.
func (c *Console) cookie(r *http.Request, name, value string, maxAge time.Duration) *http.Cookie {
	ck := &http.Cookie{Name: name, Value: value, Path: cookiePath, HttpOnly: true,
		Secure:   !loopbackHost(r.Host) || r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
		SameSite: http.SameSiteStrictMode}
	if maxAge < 0 {
		ck.MaxAge = -1
	} else {
		ck.MaxAge = int(maxAge / time.Second)
	}
	return ck
}

// loopbackHost reports whether a Host header names this machine:
// localhost or a loopback address, with or without a port.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// secureContext reports whether the browser will keep a Secure cookie:
// TLS here, TLS at a proxy in front, or loopback.
func secureContext(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") || loopbackHost(r.Host)
}

// sameOrigin refuses a post that a browser says came from another site:
// Sec-Fetch-Site other than same-origin, or an Origin that is not this
// host. Requests that carry neither (old browsers, curl) still need the
// CSRF token.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" && r.Header.Get("Sec-Fetch-Site") == "same-origin" {
		// "null": a browser that hides the origin (privacy settings)
		// but says the request is same-origin.
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// validCSRF checks the form's csrf field against the session's token.
func validCSRF(r *http.Request, want string) bool {
	if err := r.ParseForm(); err != nil {
		return false
	}
	return equalTokens(r.PostForm.Get("csrf"), want)
}

// equalTokens compares two tokens in constant time; empty never matches.
func equalTokens(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
