package policy

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
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
		if errs := unknownFields(data, reflect.TypeOf(p)); len(errs) > 0 {
			return nil, errors.Join(errs...)
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
func checkLabelKey(f, what, k string, bad badFunc) {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		bad(f, "%q is not a valid %s: %s", k, what, strings.Join(errs, "; "))
	}
}

// checkLabelValue reports an invalid label value (also taint values) as
// Kubernetes validates it.
func checkLabelValue(f, what, v string, bad badFunc) {
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		bad(f, "%q is not a valid %s: %s", v, what, strings.Join(errs, "; "))
	}
}

// checkLabels validates the keys and values of a label map (nodeSelector,
// matchLabels); a bad key is reported at f, a bad value at f.key.
func checkLabels(f string, m map[string]string, bad badFunc) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		checkLabelKey(f, "label key", k, bad)
		checkLabelValue(f+"."+k, "label value", m[k], bad)
	}
}

// badFunc reports a problem at a field path.
type badFunc func(field, format string, a ...any)

// Validate checks references and values and reports every problem at once,
// each naming the offending field.
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
	validateStorage(p.Storage, bad)
	pools := map[string]bool{}
	for i, pool := range p.Pools {
		f := fmt.Sprintf("pools[%d]", i)
		if pool.Name == "" {
			bad(f+".name", "required")
		} else if pools[pool.Name] {
			bad(f+".name", "duplicate pool %q", pool.Name)
		}
		pools[pool.Name] = true
		validatePool(f, pool, bad)
	}
	validatePlacement(p.Placement, pools, bad)
	for i, t := range p.PodTemplatePaths {
		validatePodTemplatePath(fmt.Sprintf("podTemplatePaths[%d]", i), t, bad)
	}
	return errors.Join(errs...)
}

func validateStorage(s Storage, bad badFunc) {
	if c := s.DefaultClass; c != "" && !dnsName.MatchString(c) {
		bad("storage.defaultClass", "%q is not a valid storage class name", c)
	}
	for i, r := range s.Rules {
		f := fmt.Sprintf("storage.rules[%d]", i)
		if r.StorageClass == "" {
			bad(f+".storageClass", "required")
		} else if !dnsName.MatchString(r.StorageClass) {
			bad(f+".storageClass", "%q is not a valid storage class name", r.StorageClass)
		}
		validateMatch(f+".match", r.Match, true, bad)
	}
}

// validatePool checks what a pool sets (its name is checked by Validate,
// which sees the other pools).
func validatePool(f string, pool Pool, bad badFunc) {
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
		validatePreferred(fmt.Sprintf("%s.preferredNodeAffinity[%d]", f, j), t, bad)
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
		keys[c.TopologyKey] = true
		validateSpread(cf, c, bad)
	}
}

func validatePreferred(f string, t PreferredSchedulingTerm, bad badFunc) {
	if t.Weight < 1 || t.Weight > 100 {
		bad(f+".weight", "%d is outside 1..100", t.Weight)
	}
	if len(t.Preference.MatchExpressions)+len(t.Preference.MatchFields) == 0 {
		bad(f+".preference", "needs matchExpressions or matchFields")
	}
	for k, r := range t.Preference.MatchExpressions {
		validateRequirement(fmt.Sprintf("%s.preference.matchExpressions[%d]", f, k), r, false, bad)
	}
	for k, r := range t.Preference.MatchFields {
		validateRequirement(fmt.Sprintf("%s.preference.matchFields[%d]", f, k), r, true, bad)
	}
}

// validateSpread checks a topology spread constraint but its topologyKey
// (validatePool checks it against the pool's other constraints).
func validateSpread(f string, c TopologySpreadConstraint, bad badFunc) {
	if s := c.LabelSelector; s != nil {
		checkLabels(f+".labelSelector.matchLabels", s.MatchLabels, bad)
		for k, r := range s.MatchExpressions {
			validateSelectorRequirement(fmt.Sprintf("%s.labelSelector.matchExpressions[%d]", f, k), r, bad)
		}
	}
	if c.MaxSkew < 1 {
		bad(f+".maxSkew", "must be at least 1")
	}
	if c.WhenUnsatisfiable != "DoNotSchedule" && c.WhenUnsatisfiable != "ScheduleAnyway" {
		bad(f+".whenUnsatisfiable", "%q: want DoNotSchedule or ScheduleAnyway", c.WhenUnsatisfiable)
	}
}

func validatePlacement(p Placement, pools map[string]bool, bad badFunc) {
	if d := p.DefaultPool; d != "" && !pools[d] {
		bad("placement.defaultPool", "unknown pool %q", d)
	}
	for i, r := range p.Rules {
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
}

func validatePodTemplatePath(f string, t PodTemplatePath, bad badFunc) {
	if t.Kind == "" {
		bad(f+".kind", "required")
	}
	if t.Path == "" {
		bad(f+".path", "required (e.g. spec.template)")
		return
	}
	for _, seg := range strings.Split(t.Path, ".") {
		if !pathField.MatchString(seg) {
			bad(f+".path", "%q: want dot-separated field names", t.Path)
			return
		}
	}
}

func validateMatch(f string, m Match, storage bool, bad badFunc) {
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

func validateToleration(f string, t Toleration, bad badFunc) {
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
func validateRequirement(f string, r NodeSelectorRequirement, fields bool, bad badFunc) {
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
func validateSelectorRequirement(f string, r LabelSelectorRequirement, bad badFunc) {
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

// unknownFields returns every field in data that typ does not have, in
// the order they appear, each as `unknown field "path" (line N)`
// (encoding/json names only the first it meets, and not where it is).
func unknownFields(data []byte, typ reflect.Type) []error {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil || len(doc.Content) == 0 {
		return nil
	}
	var found []unknown
	collectUnknown(doc.Content[0], typ, "", &found, 0)
	sort.SliceStable(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if a.line != b.line {
			return a.line < b.line
		}
		if a.column != b.column {
			return a.column < b.column
		}
		return a.path < b.path
	})
	errs := make([]error, len(found))
	for i, u := range found {
		errs[i] = fmt.Errorf("unknown field %q (line %d)", u.path, u.line)
	}
	return errs
}

// unknown is a key of the policy file that its Go type does not have.
type unknown struct {
	path         string
	line, column int
}

// collectUnknown walks node against typ, appending each mapping key typ has
// no field for. Aliases are followed and merge keys ("<<") read as the
// keys they merge; depth bounds alias cycles.
func collectUnknown(n *yamlv3.Node, typ reflect.Type, path string, found *[]unknown, depth int) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	for n != nil && n.Kind == yamlv3.AliasNode {
		n = n.Alias
	}
	if n == nil || depth > 100 {
		return
	}
	switch n.Kind {
	case yamlv3.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				collectMerged(v, typ, path, found, depth+1)
				continue
			}
			if ft, ok := fieldType(typ, k.Value); ok {
				collectUnknown(v, ft, joinField(path, k.Value), found, depth+1)
			} else if typ.Kind() == reflect.Struct {
				*found = append(*found, unknown{path: joinField(path, k.Value), line: k.Line, column: k.Column})
			}
		}
	case yamlv3.SequenceNode:
		if typ.Kind() == reflect.Slice {
			for i, it := range n.Content {
				collectUnknown(it, typ.Elem(), fmt.Sprintf("%s[%d]", path, i), found, depth+1)
			}
		}
	}
}

// collectMerged walks the mapping (or sequence of mappings) a merge key
// brings into the mapping at path.
func collectMerged(v *yamlv3.Node, typ reflect.Type, path string, found *[]unknown, depth int) {
	for v != nil && v.Kind == yamlv3.AliasNode {
		v = v.Alias
	}
	if v != nil && v.Kind == yamlv3.SequenceNode {
		for _, m := range v.Content {
			collectUnknown(m, typ, path, found, depth)
		}
		return
	}
	collectUnknown(v, typ, path, found, depth)
}

// fieldType returns the type of the value at key in typ: a map's element
// type, or the struct field with that json name.
func fieldType(typ reflect.Type, key string) (reflect.Type, bool) {
	switch typ.Kind() {
	case reflect.Map:
		return typ.Elem(), true
	case reflect.Struct:
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == key {
				return f.Type, true
			}
		}
	}
	return nil, false
}

func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
