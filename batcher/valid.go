package batcher

// maxDepth is encoding/json's nesting limit: json.Valid rejects a value
// nested deeper than this, and so does valid.
const maxDepth = 10000

// valid reports whether b is exactly one JSON value surrounded by optional
// white space: the grammar json.Valid accepts, including its nesting limit
// and its leniency about bytes of 0x80 and above inside strings (Parse
// checks UTF-8 separately).
func valid(b []byte) bool {
	_, _, ok := scan(b)
	return ok
}

// scan validates b as valid does and, in the same single pass, finds the
// value of data.id: the last "id" member, when it is a string, of the
// last "data" member of the top-level object, when that is an object
// (keys compared after unescaping, the last of duplicates winning, as
// encoding/json does for maps). idAt < 0 when there is none; otherwise
// b[idAt:idEnd] is the quoted string.
//
// It exists because it runs on every event delivered: json.Valid's
// byte-at-a-time state machine followed by a walk to data.id cost about
// 5–9 µs per 1 KB event, most of the dispatcher's CPU at 100k events/s;
// one pass with a table lookup per string byte costs well under half.
// FuzzParse checks it against json.Valid and encoding/json.
func scan(b []byte) (idAt, idEnd int, ok bool) {
	var buf [32]byte
	stack := buf[:0] // '{' or '[' per open container
	idAt, idEnd = -1, -1
	inData := false // the object at depth 2 is the top-level object's data
	key := keyOther // what the key of the value about to start names
	i := skipSpace(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return -1, -1, false
		}
		if key == keyData || key == keyID {
			idAt, idEnd = -1, -1 // a later member replaces an earlier one
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(stack) == maxDepth {
				return -1, -1, false
			}
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			i = skipSpace(b, i+1)
			if i < len(b) && b[i] == end {
				i++ // empty: a complete value
				break
			}
			stack = append(stack, c)
			if len(stack) == 2 {
				inData = c == '{' && key == keyData
			}
			if c == '{' {
				var ok bool
				if key, i, ok = scanKey(b, i, len(stack), inData); !ok {
					return -1, -1, false
				}
			} else {
				key = keyOther
			}
			continue
		case c == '"':
			start := i
			var ok bool
			if i, ok = scanString(b, i); !ok {
				return -1, -1, false
			}
			if key == keyID {
				idAt, idEnd = start, i
			}
		case c == '-' || c >= '0' && c <= '9':
			var ok bool
			if i, ok = scanNumber(b, i); !ok {
				return -1, -1, false
			}
		case c == 't':
			if !hasLiteral(b, i, "true") {
				return -1, -1, false
			}
			i += 4
		case c == 'f':
			if !hasLiteral(b, i, "false") {
				return -1, -1, false
			}
			i += 5
		case c == 'n':
			if !hasLiteral(b, i, "null") {
				return -1, -1, false
			}
			i += 4
		default:
			return -1, -1, false
		}

		// A value ended at b[i]: close containers until one continues.
		for {
			i = skipSpace(b, i)
			if len(stack) == 0 {
				return idAt, idEnd, i == len(b)
			}
			if i >= len(b) {
				return -1, -1, false
			}
			top := stack[len(stack)-1]
			switch {
			case b[i] == ',':
				i = skipSpace(b, i+1)
				if top == '{' {
					var ok bool
					if key, i, ok = scanKey(b, i, len(stack), inData); !ok {
						return -1, -1, false
					}
				} else {
					key = keyOther
				}
			case top == '{' && b[i] == '}' || top == '[' && b[i] == ']':
				stack = stack[:len(stack)-1]
				if len(stack) < 2 {
					inData = false
				}
				i++
				continue
			default:
				return -1, -1, false
			}
			break
		}
	}
}

// What a member's key names, for scan.
const (
	keyOther = iota
	keyData  // "data" in the top-level object
	keyID    // "id" in the top-level object's data
)

// scanKey scans an object member's key and colon at b[i], in an object
// at depth (1: the top-level object), and returns what the key names and
// the index of the value.
func scanKey(b []byte, i, depth int, inData bool) (key, value int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	end, ok := scanString(b, i)
	if !ok {
		return 0, 0, false
	}
	key = keyOther
	switch {
	case depth == 1 && keyIs(b[i:end], "data"):
		key = keyData
	case depth == 2 && inData && keyIs(b[i:end], "id"):
		key = keyID
	}
	end = skipSpace(b, end)
	if end >= len(b) || b[end] != ':' {
		return 0, 0, false
	}
	return key, skipSpace(b, end+1), true
}

// plain marks the bytes a JSON string may hold as they are: everything but
// the quote, the backslash and control characters.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString scans the string that starts at b[i] (a quote) and returns
// the index just past it.
func scanString(b []byte, i int) (int, bool) {
	for i++; i < len(b); i++ {
		if plain[b[i]] {
			continue
		}
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return 0, false
				}
				i += 4
			default:
				return 0, false
			}
		default: // a control character
			return 0, false
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanNumber scans the number that starts at b[i] and returns the index
// just past it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (int, bool) {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

func hasLiteral(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}
