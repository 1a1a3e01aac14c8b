package jsonscan

import "strconv"

// maxMag is the largest n for which every number below 10^n is within a
// double's range (math.MaxFloat64 is about 1.8e308).
const maxMag = 308

// Number scans the number at b[i] (RFC 8259:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?) and refuses one beyond
// the range of a double ([ErrRange], at index i) as strconv.ParseFloat
// decides. It calls ParseFloat only for numbers that may be out of range,
// at least 10^308 by their digit and exponent counts, so the usual number
// costs no more than its syntax check.
func Number(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	intStart := i
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, ErrSyntax
	}
	mag := i - intStart // |value| < 10^(mag+exp)
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return j, ErrSyntax
		}
		i = j
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		neg := i < len(b) && b[i] == '-'
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		switch {
		case j == i:
			return j, ErrSyntax
		case j-i > 4: // too long to add up; let ParseFloat decide
			exp = maxMag + 1
		default:
			for _, c := range b[i:j] {
				exp = exp*10 + int(c-'0')
			}
			if neg {
				exp = -exp
			}
		}
		i = j
	}
	if mag > maxMag || mag+exp > maxMag {
		if _, err := strconv.ParseFloat(string(b[start:i]), 64); err != nil {
			return start, ErrRange // ParseFloat's only error for valid syntax
		}
	}
	return i, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
