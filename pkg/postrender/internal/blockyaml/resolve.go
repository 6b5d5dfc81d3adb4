package blockyaml

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Tags as go.yaml.in/yaml/v3 writes them on nodes.
const (
	tagNull      = "!!null"
	tagBool      = "!!bool"
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagFloat     = "!!float"
	tagTimestamp = "!!timestamp"
	tagSeq       = "!!seq"
	tagMap       = "!!map"
	tagMerge     = "!!merge"
)

// hint classifies the first byte of a plain scalar the way yaml.v3's
// resolver does: 0 means the scalar is always a string.
var hint = func() (t [256]byte) {
	t['+'], t['-'] = 'S', 'S'
	for c := '0'; c <= '9'; c++ {
		t[c] = 'D'
	}
	for _, c := range "yYnNtTfFoO~" {
		t[c] = 'M'
	}
	t['.'] = '.'
	return t
}()

// special holds the plain scalars yaml.v3 resolves by table lookup.
var special = map[string]string{
	"true": tagBool, "True": tagBool, "TRUE": tagBool,
	"false": tagBool, "False": tagBool, "FALSE": tagBool,
	"~": tagNull, "null": tagNull, "Null": tagNull, "NULL": tagNull,
	".nan": tagFloat, ".NaN": tagFloat, ".NAN": tagFloat,
	".inf": tagFloat, ".Inf": tagFloat, ".INF": tagFloat,
	"+.inf": tagFloat, "+.Inf": tagFloat, "+.INF": tagFloat,
	"-.inf": tagFloat, "-.Inf": tagFloat, "-.INF": tagFloat,
}

var yamlFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// timestampFormats are the layouts yaml.v3 accepts for an untagged plain
// scalar to be a !!timestamp.
var timestampFormats = []string{
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

// plainTag returns the tag yaml.v3 gives an untagged plain scalar s
// (non-empty): the same decision procedure, kept equal by the differential
// tests against yaml.v3.
func plainTag(s string) string {
	if s == "<<" {
		return tagMerge
	}
	h := hint[s[0]]
	if h == 0 {
		return tagStr
	}
	if t, ok := special[s]; ok {
		return t
	}
	switch h {
	case '.':
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			return tagFloat
		}
	case 'D', 'S':
		if isTimestamp(s) {
			return tagTimestamp
		}
		plain := strings.ReplaceAll(s, "_", "")
		if _, err := strconv.ParseInt(plain, 0, 64); err == nil {
			return tagInt
		}
		if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
			return tagInt
		}
		if yamlFloat.MatchString(plain) {
			if _, err := strconv.ParseFloat(plain, 64); err == nil {
				return tagFloat
			}
		}
		for _, p := range [...]struct {
			prefix string
			base   int
		}{{"0b", 2}, {"0o", 8}} {
			if strings.HasPrefix(plain, p.prefix) {
				if _, err := strconv.ParseInt(plain[2:], p.base, 64); err == nil {
					return tagInt
				}
				if _, err := strconv.ParseUint(plain[2:], p.base, 64); err == nil {
					return tagInt
				}
			} else if strings.HasPrefix(plain, "-"+p.prefix) {
				if _, err := strconv.ParseInt("-"+plain[3:], p.base, 64); err == nil {
					return tagInt
				}
			}
		}
	}
	return tagStr
}

func isTimestamp(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, f := range timestampFormats {
		if _, err := time.Parse(f, s); err == nil {
			return true
		}
	}
	return false
}
