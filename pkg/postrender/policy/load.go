package policy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Load reads and validates the policy file at path.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return p, nil
}

// Parse decodes a policy strictly (unknown and duplicate fields are errors
// naming the field) and validates it.
func Parse(data []byte) (*Policy, error) {
	var p Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		if path := unknownField(data, reflect.TypeOf(p)); path != "" {
			return nil, fmt.Errorf("unknown field %q", path)
		}
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

var (
	dnsName   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	pathField = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// checkLabelKey reports an invalid label key (also used for taint keys and
// topology keys: all are qualified names) as Kubernetes validates it.
func checkLabelKey(f, what, k string, bad func(string, string, ...any)) {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		bad(f, "%q is not a valid %s: %s", k, what, strings.Join(errs, "; "))
	}
}

// checkLabelValue reports an invalid label value (also taint values) as
// Kubernetes validates it.
func checkLabelValue(f, what, v string, bad func(string, string, ...any)) {
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		bad(f, "%q is not a valid %s: %s", v, what, strings.Join(errs, "; "))
	}
}

// checkLabels validates the keys and values of a label map (nodeSelector,
// matchLabels); a bad key is reported at f, a bad value at f.key.
func checkLabels(f string, m map[string]string, bad func(string, string, ...any)) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		checkLabelKey(f, "label key", k, bad)
		checkLabelValue(f+"."+k, "label value", m[k], bad)
	}
}

// Validate checks references and values, naming the offending field.
func (p *Policy) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if p.APIVersion != "" && p.APIVersion != APIVersion {
		bad("apiVersion", "%q is not supported (want %s)", p.APIVersion, APIVersion)
	}
	if p.Kind != "" && p.Kind != Kind {
		bad("kind", "%q is not supported (want %s)", p.Kind, Kind)
	}
	if c := p.Storage.DefaultClass; c != "" && !dnsName.MatchString(c) {
		bad("storage.defaultClass", "%q is not a valid storage class name", c)
	}
	for i, r := range p.Storage.Rules {
		f := fmt.Sprintf("storage.rules[%d]", i)
		if r.StorageClass == "" {
			bad(f+".storageClass", "required")
		} else if !dnsName.MatchString(r.StorageClass) {
			bad(f+".storageClass", "%q is not a valid storage class name", r.StorageClass)
		}
		validateMatch(f+".match", r.Match, true, bad)
	}
	pools := map[string]bool{}
	for i, pool := range p.Pools {
		f := fmt.Sprintf("pools[%d]", i)
		if pool.Name == "" {
			bad(f+".name", "required")
		} else if pools[pool.Name] {
			bad(f+".name", "duplicate pool %q", pool.Name)
		}
		pools[pool.Name] = true
		if len(pool.NodeSelector)+len(pool.Tolerations)+len(pool.RequiredNodeAffinity)+len(pool.PreferredNodeAffinity)+len(pool.TopologySpread) == 0 {
			bad(f, "pool %q sets nothing (give nodeSelector, tolerations, node affinity or topologySpread)", pool.Name)
		}
		checkLabels(f+".nodeSelector", pool.NodeSelector, bad)
		for j, t := range pool.Tolerations {
			validateToleration(fmt.Sprintf("%s.tolerations[%d]", f, j), t, bad)
		}
		for j, r := range pool.RequiredNodeAffinity {
			validateRequirement(fmt.Sprintf("%s.requiredNodeAffinity[%d]", f, j), r, false, bad)
		}
		for j, t := range pool.PreferredNodeAffinity {
			tf := fmt.Sprintf("%s.preferredNodeAffinity[%d]", f, j)
			if t.Weight < 1 || t.Weight > 100 {
				bad(tf+".weight", "%d is outside 1..100", t.Weight)
			}
			if len(t.Preference.MatchExpressions)+len(t.Preference.MatchFields) == 0 {
				bad(tf+".preference", "needs matchExpressions or matchFields")
			}
			for k, r := range t.Preference.MatchExpressions {
				validateRequirement(fmt.Sprintf("%s.preference.matchExpressions[%d]", tf, k), r, false, bad)
			}
			for k, r := range t.Preference.MatchFields {
				validateRequirement(fmt.Sprintf("%s.preference.matchFields[%d]", tf, k), r, true, bad)
			}
		}
		keys := map[string]bool{}
		for j, c := range pool.TopologySpread {
			cf := fmt.Sprintf("%s.topologySpread[%d]", f, j)
			if c.TopologyKey == "" {
				bad(cf+".topologyKey", "required")
			} else if keys[c.TopologyKey] {
				bad(cf+".topologyKey", "duplicate %q", c.TopologyKey)
			} else {
				checkLabelKey(cf+".topologyKey", "label key", c.TopologyKey, bad)
			}
			if s := c.LabelSelector; s != nil {
				checkLabels(cf+".labelSelector.matchLabels", s.MatchLabels, bad)
				for k, r := range s.MatchExpressions {
					validateSelectorRequirement(fmt.Sprintf("%s.labelSelector.matchExpressions[%d]", cf, k), r, bad)
				}
			}
			keys[c.TopologyKey] = true
			if c.MaxSkew < 1 {
				bad(cf+".maxSkew", "must be at least 1")
			}
			if c.WhenUnsatisfiable != "DoNotSchedule" && c.WhenUnsatisfiable != "ScheduleAnyway" {
				bad(cf+".whenUnsatisfiable", "%q: want DoNotSchedule or ScheduleAnyway", c.WhenUnsatisfiable)
			}
		}
	}
	if d := p.Placement.DefaultPool; d != "" && !pools[d] {
		bad("placement.defaultPool", "unknown pool %q", d)
	}
	for i, r := range p.Placement.Rules {
		f := fmt.Sprintf("placement.rules[%d]", i)
		switch {
		case r.Skip && r.Pool != "":
			bad(f, "skip and pool are mutually exclusive")
		case r.Skip && r.Override:
			bad(f, "skip and override are mutually exclusive")
		case !r.Skip && r.Pool == "":
			bad(f+".pool", "required (or skip: true)")
		case !r.Skip && !pools[r.Pool]:
			bad(f+".pool", "unknown pool %q", r.Pool)
		}
		validateMatch(f+".match", r.Match, false, bad)
	}
	for i, t := range p.PodTemplatePaths {
		f := fmt.Sprintf("podTemplatePaths[%d]", i)
		if t.Kind == "" {
			bad(f+".kind", "required")
		}
		if t.Path == "" {
			bad(f+".path", "required (e.g. spec.template)")
		}
		for _, seg := range strings.Split(t.Path, ".") {
			if t.Path != "" && !pathField.MatchString(seg) {
				bad(f+".path", "%q: want dot-separated field names", t.Path)
				break
			}
		}
	}
	return errors.Join(errs...)
}

func validateMatch(f string, m Match, storage bool, bad func(string, string, ...any)) {
	if !storage && len(m.ClaimNames) > 0 {
		bad(f+".claimNames", "only allowed in storage rules")
	}
	for _, k := range slices.Sorted(maps.Keys(m.Labels)) {
		checkLabelKey(f+".labels", "label key", k, bad) // values are globs
	}
	for _, k := range m.Kinds {
		if k == "" {
			bad(f+".kinds", "empty kind")
		}
	}
}

func validateToleration(f string, t Toleration, bad func(string, string, ...any)) {
	if t.Key != "" {
		checkLabelKey(f+".key", "taint key", t.Key, bad)
	}
	switch t.Operator {
	case "", "Equal":
		if t.Key == "" {
			bad(f+".key", "required with operator Equal")
		}
		checkLabelValue(f+".value", "taint value", t.Value, bad)
	case "Exists":
		if t.Value != "" {
			bad(f+".value", "must be empty with operator Exists")
		}
	default:
		bad(f+".operator", "%q: want Equal or Exists", t.Operator)
	}
	switch t.Effect {
	case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
	default:
		bad(f+".effect", "%q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != "NoExecute" {
		bad(f+".tolerationSeconds", "only valid with effect NoExecute")
	}
}

// validateRequirement checks a node selector requirement (matchExpressions:
// label keys and values; matchFields: field names, whose values are not
// label values).
func validateRequirement(f string, r NodeSelectorRequirement, fields bool, bad func(string, string, ...any)) {
	if r.Key == "" {
		bad(f+".key", "required")
	} else if !fields {
		checkLabelKey(f+".key", "label key", r.Key, bad)
	}
	switch r.Operator {
	case "In", "NotIn":
		if len(r.Values) == 0 {
			bad(f+".values", "required with operator %s", r.Operator)
		}
		if !fields {
			for i, v := range r.Values {
				checkLabelValue(fmt.Sprintf("%s.values[%d]", f, i), "label value", v, bad)
			}
		}
	case "Exists", "DoesNotExist":
		if len(r.Values) > 0 {
			bad(f+".values", "must be empty with operator %s", r.Operator)
		}
	case "Gt", "Lt":
		if len(r.Values) != 1 {
			bad(f+".values", "exactly one integer with operator %s", r.Operator)
		}
		for i, v := range r.Values {
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				bad(fmt.Sprintf("%s.values[%d]", f, i), "%q is not an integer (operator %s)", v, r.Operator)
			}
		}
	default:
		bad(f+".operator", "%q: want In, NotIn, Exists, DoesNotExist, Gt or Lt", r.Operator)
	}
}

// validateSelectorRequirement checks a label selector requirement
// (topologySpread labelSelector.matchExpressions).
func validateSelectorRequirement(f string, r LabelSelectorRequirement, bad func(string, string, ...any)) {
	if r.Key == "" {
		bad(f+".key", "required")
	} else {
		checkLabelKey(f+".key", "label key", r.Key, bad)
	}
	switch r.Operator {
	case "In", "NotIn":
		if len(r.Values) == 0 {
			bad(f+".values", "required with operator %s", r.Operator)
		}
		for i, v := range r.Values {
			checkLabelValue(fmt.Sprintf("%s.values[%d]", f, i), "label value", v, bad)
		}
	case "Exists", "DoesNotExist":
		if len(r.Values) > 0 {
			bad(f+".values", "must be empty with operator %s", r.Operator)
		}
	default:
		bad(f+".operator", "%q: want In, NotIn, Exists or DoesNotExist", r.Operator)
	}
}

// unknownField returns the path of the first field in data that typ does not
// have (encoding/json names only the field, not where it is).
func unknownField(data []byte, typ reflect.Type) string {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return ""
	}
	return findUnknown(v, typ, "")
}

func findUnknown(v any, typ reflect.Type, path string) string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch x := v.(type) {
	case map[string]any:
		switch typ.Kind() {
		case reflect.Map:
			for k, val := range x {
				if p := findUnknown(val, typ.Elem(), path+"."+k); p != "" {
					return p
				}
			}
		case reflect.Struct:
			fields := map[string]reflect.Type{}
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
				fields[name] = f.Type
			}
			for k, val := range x {
				ft, ok := fields[k]
				if !ok {
					return strings.TrimPrefix(path+"."+k, ".")
				}
				if p := findUnknown(val, ft, path+"."+k); p != "" {
					return p
				}
			}
		}
	case []any:
		if typ.Kind() == reflect.Slice {
			for i, val := range x {
				if p := findUnknown(val, typ.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
					return p
				}
			}
		}
	}
	return ""
}
