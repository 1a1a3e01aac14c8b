package jsonscan

// Skip scans the value at b[i], which lies inside depth arrays and
// objects (0 for a whole text), and returns the index just past it. It
// accepts exactly what json.Valid accepts of one value, less the texts
// the package's rules refuse: nesting beyond MaxDepth counting the depth
// levels around it, numbers beyond a double's range, strings not UTF-8.
//
// It loops with a fixed stack rather than recursing, so it does not
// allocate.
func Skip(b []byte, i, depth int) (int, error) {
	var isObj [MaxDepth]bool // per open container, innermost last
	n, room := 0, MaxDepth-depth
	var err error
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return i, ErrSyntax
		}
		switch c := b[i]; c {
		case '{', '[':
			if n >= room {
				return i, ErrDepth
			}
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			if i = Space(b, i+1); i < len(b) && b[i] == end {
				i++ // empty: a complete value
				break
			}
			isObj[n] = c == '{'
			n++
			if c == '{' {
				if _, i, err = Member(b, i); err != nil {
					return i, err
				}
			}
			continue
		case '"':
			i, _, err = String(b, i)
		case 't', 'f', 'n':
			i, err = Literal(b, i)
		default:
			i, err = Number(b, i)
		}
		if err != nil {
			return i, err
		}
		// A value ended at b[i]: close containers until one continues.
		if i, err = next(b, i, &n, &isObj); err != nil || n == 0 {
			return i, err
		}
	}
}

// next scans past the end of a value in the n open containers of isObj:
// closing brackets (decrementing n) up to a comma and the member name
// after it, or to the end of the outermost container (n == 0).
func next(b []byte, i int, n *int, isObj *[MaxDepth]bool) (int, error) {
	for *n > 0 {
		i = Space(b, i)
		if i >= len(b) {
			return i, ErrSyntax
		}
		obj := isObj[*n-1]
		switch {
		case b[i] == ',':
			i = Space(b, i+1)
			if obj {
				_, i, err := Member(b, i)
				return i, err
			}
			return i, nil
		case obj && b[i] == '}' || !obj && b[i] == ']':
			*n--
			i++
		default:
			return i, ErrSyntax
		}
	}
	return i, nil
}

// Member scans an object member's name at b[i] and the colon and white
// space after it: b[i:nameEnd] is the quoted name (see [Unquote]) and
// b[value] the first byte of the value. On an error both are the index of
// the offending byte.
func Member(b []byte, i int) (nameEnd, value int, err error) {
	nameEnd, _, err = String(b, i)
	if err != nil {
		return nameEnd, nameEnd, err
	}
	if i = Space(b, nameEnd); i >= len(b) || b[i] != ':' {
		return i, i, ErrSyntax
	}
	return nameEnd, Space(b, i+1), nil
}
