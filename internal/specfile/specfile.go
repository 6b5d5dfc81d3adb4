// Package specfile decodes declarative spec files (YAML or JSON) strictly:
// unknown fields, duplicate keys and values of the wrong shape are errors
// that name their field path, all of them at once, so a user fixes a spec in
// one round. pg-init and s3-init read their specs through it.
package specfile

import (
	"fmt"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Error is an invalid spec (or usage): the message names the document and
// the field path of each problem, e.g. "roles[0].passwrd: unknown field".
type Error struct {
	Source   string   // file name, or "flags"
	Problems []string // "databases[0].owner: ..."
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("invalid spec %s: %s", e.Source, e.Problems[0])
	}
	return fmt.Sprintf("invalid spec %s: %d problems:\n  %s", e.Source, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Load reads path and decodes it strictly into out (a pointer to a struct).
func Load(path string, out any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{Source: path, Problems: []string{err.Error()}}
	}
	return Decode(path, data, out)
}

// LoadAs is Load into a new T: the one loader of every spec type.
func LoadAs[T any](path string) (*T, error) {
	var v T
	if err := Load(path, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DecodeAs is Decode into a new T.
func DecodeAs[T any](source string, data []byte) (*T, error) {
	var v T
	if err := Decode(source, data, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Decode strictly decodes YAML (or JSON) data into out (a pointer to a
// struct with json tags). source names the document in errors, which are
// always *Error. It does not validate values: that is the caller's job.
func Decode(source string, data []byte, out any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return &Error{Source: source, Problems: []string{"not valid YAML: " + err.Error()}}
	}
	var generic any
	if err := yaml.Unmarshal(js, &generic); err != nil {
		return &Error{Source: source, Problems: []string{err.Error()}}
	}
	if generic == nil {
		return &Error{Source: source, Problems: []string{"empty document"}}
	}
	if probs := shapeProblems(reflect.TypeOf(out), generic, ""); len(probs) > 0 {
		return &Error{Source: source, Problems: probs}
	}
	if err := yaml.UnmarshalStrict(js, out); err != nil {
		return &Error{Source: source, Problems: []string{strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: ")}}
	}
	return nil
}

// shapeProblems walks a decoded document against the Go type t and returns
// one problem per key t has no json field for, and per value whose shape
// (object, list, string, boolean) does not match.
func shapeProblems(t reflect.Type, v any, path string) []string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if v == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: must be an object", orRoot(path))}
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			name := strings.Split(t.Field(i).Tag.Get("json"), ",")[0]
			if name != "" && name != "-" {
				fields[name] = t.Field(i).Type
			}
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s: unknown field %q", joinPath(path, k), k))
				continue
			}
			out = append(out, shapeProblems(ft, m[k], joinPath(path, k))...)
		}
		return out
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: must be a list", orRoot(path))}
		}
		var out []string
		for i, e := range l {
			out = append(out, shapeProblems(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: must be an object", orRoot(path))}
		}
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, shapeProblems(t.Elem(), m[k], joinPath(path, k))...)
		}
		return out
	case reflect.String:
		if _, ok := v.(string); !ok {
			return []string{fmt.Sprintf("%s: must be a string (quote it)", path)}
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			return []string{fmt.Sprintf("%s: must be true or false", path)}
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return intProblems(t, v, path)
	}
	return nil
}

// intProblems checks a decoded JSON number (a float64) against the integer
// type t: a whole number within t's range. Validate methods check the
// ranges that make sense; this keeps values the Go type cannot hold from
// failing later without their path.
func intProblems(t reflect.Type, v any, path string) []string {
	f, ok := v.(float64)
	if !ok {
		return []string{fmt.Sprintf("%s: must be a number", path)}
	}
	lo := int64(-1) << (t.Bits() - 1)
	if f != math.Trunc(f) || f < float64(lo) || f >= -float64(lo) {
		format := byte('f')
		if math.Abs(f) >= 1e21 {
			format = 'g' // as JSON and YAML print large numbers
		}
		return []string{fmt.Sprintf("%s: %s: want a whole number from %d to %d", path,
			strconv.FormatFloat(f, format, -1, 64), lo, ^lo)}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}
