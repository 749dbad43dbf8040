package backend

import (
	"unicode/utf8"
)

// A validating JSON scanner: the skimmer (skim.go), the body rewrite and the answer checks walk
// untrusted JSON with it, so every value they step over is checked as they go, in one pass, at
// a fraction of the cost of json.Valid followed by a decode. It accepts exactly what
// json.Valid accepts, with two additions from RFC 8259 that encoding/json leaves out: strings
// must be valid UTF-8 (encoding/json would silently turn bad bytes into U+FFFD) and, like
// encoding/json, values may nest at most maxDepth deep. FuzzCheckAnswer holds it to that.

// maxDepth is how deep values may nest, as in encoding/json (which refuses deeper documents),
// so what passes here the client can decode.
const maxDepth = 10000

// stringByte marks the bytes a string scan must look at: the closing quote, escapes, control
// characters (not allowed raw) and the start of multi-byte UTF-8 sequences.
var stringByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()

// skipWS returns the index of the first non-space byte at or after i.
func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the valid string that opens at b[i], or -1.
func skipString(b []byte, i int) int {
	for i++; i < len(b); {
		c := b[i]
		if !stringByte[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 >= len(b) {
				return -1
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return -1
				}
				i += 6
			default:
				return -1
			}
		case c < 0x20:
			return -1
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return -1
			}
			i += n
		}
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipDigits returns the index of the first non-digit at or after i.
func skipDigits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

// skipNumber returns the index just past the number that starts at b[i], or -1: JSON's
// grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?.
func skipNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return -1
	case b[i] == '0':
		i++
	case isDigit(b[i]):
		i = skipDigits(b, i+1)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// skipLiteral returns the index just past lit at b[i], or -1.
func skipLiteral(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipKey checks the key and colon of an object member at b[i] and returns the index of its
// value, or -1.
func skipKey(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = skipString(b, i); i < 0 {
		return -1
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return -1
	}
	if i = skipWS(b, i+1); i >= len(b) {
		return -1
	}
	return i
}

// skipValue returns the index just past the valid value that starts at b[i] (i < len(b)),
// or -1. depth is how many containers hold the value in its document (1 for a member of the
// top-level object), so nesting is bounded as in encoding/json. Containers are walked without
// recursion; the brackets still open, innermost last, are the only state.
func skipValue(b []byte, i, depth int) int {
	var small [32]byte
	open := small[:0]
	for {
		end := -1
		switch c := b[i]; c {
		case '{', '[':
			if depth+len(open) >= maxDepth {
				return -1
			}
			j := skipWS(b, i+1)
			if j < len(b) && b[j] == c+2 { // '{'+2 == '}', '['+2 == ']'
				end = j + 1
				break
			}
			open = append(open, c)
			if c == '{' {
				j = skipKey(b, j)
			}
			if j < 0 || j >= len(b) {
				return -1
			}
			i = j
			continue
		case '"':
			end = skipString(b, i)
		case 't':
			end = skipLiteral(b, i, "true")
		case 'f':
			end = skipLiteral(b, i, "false")
		case 'n':
			end = skipLiteral(b, i, "null")
		default:
			end = skipNumber(b, i)
		}
		if end < 0 {
			return -1
		}
		// The value is complete: close the containers it completes, then find the next one.
		i = end
		for {
			if len(open) == 0 {
				return i
			}
			if i = skipWS(b, i); i >= len(b) {
				return -1
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return -1
			}
			if i = skipWS(b, i+1); top == '{' {
				i = skipKey(b, i)
			}
			if i < 0 || i >= len(b) {
				return -1
			}
			break
		}
	}
}
