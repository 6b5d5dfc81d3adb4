package blockyaml

import (
	"bytes"
	"unicode/utf8"

	yaml "go.yaml.in/yaml/v3"
)

// isIndicator lists the characters that cannot start a plain scalar.
var isIndicator = func() (t [256]bool) {
	for _, c := range "-?:,[]{}#&*!|>'\"%@`" {
		t[c] = true
	}
	return t
}()

// plainStart checks that a plain scalar may start at i.
func (p *parser) plainStart(i int) {
	c := p.src[i]
	if !isIndicator[c] {
		return
	}
	if c == '-' && i+1 < len(p.src) {
		if n := p.src[i+1]; n != ' ' && n != '\n' && n != '\t' && n != '\r' {
			return
		}
	}
	fail()
}

// plainEnd scans a single-line plain scalar in block context starting at i
// and returns its end (trailing spaces excluded) and whether it stopped at a
// ":" indicator (then it is a key).
func (p *parser) plainEnd(i int) (int, bool) {
	n := len(p.src)
	j := i
scan:
	for j < n {
		switch class[p.src[j]] {
		case cText:
			switch p.src[j] {
			case ':':
				if j+1 >= n || p.src[j+1] == ' ' || p.src[j+1] == '\n' {
					if j-i > maxKey {
						fail()
					}
					return j, true
				}
			case '#':
				if p.src[j-1] == ' ' {
					break scan
				}
			}
			j++
		case cHigh:
			j += p.runeAt(j)
		case cBreak:
			break scan
		default:
			fail()
		}
	}
	for j > i && p.src[j-1] == ' ' {
		j--
	}
	return j, false
}

// quoted scans a single-line quoted scalar starting at i and returns its
// value (when need is set), the offset after the closing quote and its style.
func (p *parser) quoted(i int, need bool) (string, int, yaml.Style) {
	n := len(p.src)
	if p.src[i] == '\'' {
		escaped := false
		j := i + 1
		for {
			if j >= n {
				fail()
			}
			switch class[p.src[j]] {
			case cText:
				if p.src[j] == '\'' {
					if j+1 < n && p.src[j+1] == '\'' {
						escaped = true
						j += 2
						continue
					}
					v := ""
					switch {
					case !need:
					case escaped:
						v = string(bytes.ReplaceAll(p.src[i+1:j], []byte("''"), []byte("'")))
					case p.build:
						v = p.str[i+1 : j]
					default:
						v = string(p.src[i+1 : j]) // a key in check mode
					}
					return v, j + 1, yaml.SingleQuotedStyle
				}
				j++
			case cHigh:
				j += p.runeAt(j)
			default:
				fail() // multi-line, tab, control character
			}
		}
	}
	var buf []byte
	escaped := false
	j := i + 1
	for {
		if j >= n {
			fail()
		}
		switch class[p.src[j]] {
		case cText:
			switch p.src[j] {
			case '"':
				var v string
				switch {
				case !need:
				case escaped:
					v = string(buf)
				case p.build:
					v = p.str[i+1 : j]
				default:
					v = string(p.src[i+1 : j])
				}
				return v, j + 1, yaml.DoubleQuotedStyle
			case '\\':
				if !escaped && need {
					buf = append(buf, p.src[i+1:j]...)
				}
				escaped = true
				j = p.escape(j, &buf, need)
				continue
			}
			if escaped && need {
				buf = append(buf, p.src[j])
			}
			j++
		case cHigh:
			size := p.runeAt(j)
			if escaped && need {
				buf = append(buf, p.src[j:j+size]...)
			}
			j += size
		default:
			fail()
		}
	}
}

// escape decodes the escape sequence at i (a backslash) into buf and
// returns the offset after it.
func (p *parser) escape(i int, buf *[]byte, need bool) int {
	if i+1 >= len(p.src) {
		fail()
	}
	b := *buf
	digits := 0
	switch p.src[i+1] {
	case '0':
		b = append(b, 0)
	case 'a':
		b = append(b, 7)
	case 'b':
		b = append(b, 8)
	case 't':
		b = append(b, 9)
	case 'n':
		b = append(b, 10)
	case 'v':
		b = append(b, 11)
	case 'f':
		b = append(b, 12)
	case 'r':
		b = append(b, 13)
	case 'e':
		b = append(b, 0x1b)
	case ' ', '"', '\'', '\\':
		b = append(b, p.src[i+1])
	case 'N':
		b = utf8.AppendRune(b, 0x85)
	case '_':
		b = utf8.AppendRune(b, 0xA0)
	case 'L':
		b = utf8.AppendRune(b, 0x2028)
	case 'P':
		b = utf8.AppendRune(b, 0x2029)
	case 'x':
		digits = 2
	case 'u':
		digits = 4
	case 'U':
		digits = 8
	default:
		fail() // unknown escape, escaped tab or line break
	}
	j := i + 2
	if digits > 0 {
		if j+digits > len(p.src) {
			fail()
		}
		v := 0
		for _, c := range p.src[j : j+digits] {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | int(c-'0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | int(c-'a'+10)
			case c >= 'A' && c <= 'F':
				v = v<<4 | int(c-'A'+10)
			default:
				fail()
			}
		}
		if v >= 0xD800 && v <= 0xDFFF || v > 0x10FFFF {
			fail()
		}
		b = utf8.AppendRune(b, rune(v))
		j += digits
	}
	if need {
		*buf = b
	}
	return j
}
