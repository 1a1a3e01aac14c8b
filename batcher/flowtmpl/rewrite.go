package flowtmpl

import (
	"strings"
)

// rewritePrints turns every {{ expr }} of src into {% _json_print expr %}
// (and {{- -}} into {%- -%}), so that values print through printNode, not
// pongo2's own variable node, which formats for HTML (12.500000, True).
// It follows pongo2's lexer: comments {# #} and {% verbatim %} blocks
// are left alone, string literals inside tags may hold braces, and a line
// break is never added or removed, so error lines stay the template's.
func rewritePrints(src string) (string, error) {
	var out strings.Builder
	out.Grow(len(src) + len(src)/4)
	i := 0
	for i < len(src) {
		rest := src[i:]
		switch {
		case strings.HasPrefix(rest, "{% verbatim %}"):
			end := strings.Index(rest, "{% endverbatim %}")
			if end < 0 {
				out.WriteString(rest)
				return out.String(), nil
			}
			end += len("{% endverbatim %}")
			out.WriteString(rest[:end])
			i += end
		case strings.HasPrefix(rest, "{#"):
			end := strings.Index(rest, "#}")
			if end < 0 {
				out.WriteString(rest)
				return out.String(), nil
			}
			out.WriteString(rest[:end+2])
			i += end + 2
		case strings.HasPrefix(rest, "{%"):
			n := tagEnd(rest, 2, "%}")
			out.WriteString(rest[:n])
			i += n
		case strings.HasPrefix(rest, "{{"):
			open, start := "{%", 2
			if strings.HasPrefix(rest, "{{-") {
				open, start = "{%-", 3
			}
			n := tagEnd(rest, start, "}}")
			if n == len(rest) && !strings.HasSuffix(rest, "}}") {
				out.WriteString(rest) // unterminated: pongo2 reports it
				return out.String(), nil
			}
			inner, closeTok := rest[start:n-2], "%}"
			if strings.HasSuffix(inner, "-") {
				inner, closeTok = inner[:len(inner)-1], "-%}"
			}
			out.WriteString(open + " " + printTag + " " + inner + " " + closeTok)
			i += n
		default:
			j := strings.IndexByte(rest[1:], '{')
			if j < 0 {
				out.WriteString(rest)
				return out.String(), nil
			}
			out.WriteString(rest[:j+1])
			i += j + 1
		}
	}
	return out.String(), nil
}

// tagEnd returns the index just past the first close outside a string
// literal in s[from:], or len(s) if there is none.
func tagEnd(s string, from int, close string) int {
	var quote byte
	for i := from; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
		case c == '"' || c == '\'':
			quote = c
		case strings.HasPrefix(s[i:], close):
			return i + len(close)
		}
	}
	return len(s)
}
