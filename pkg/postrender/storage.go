package postrender

import (
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/policy"
)

// storageFilter sets storageClassName on the claims of the kinds in
// claimSources, as the policy's storage section says.
type storageFilter struct{ storage *policy.Storage }

func (f storageFilter) apply(c *docContext, o *objectInfo) error {
	for i := range claimSources {
		src := &claimSources[i]
		if src.kind != o.kind || !isGroup(o.group, src.groups...) {
			continue
		}
		if len(src.templates) == 0 {
			spec, err := descend(o, []string{"spec"}, yaml.MappingNode)
			if err != nil || spec == nil {
				return err
			}
			return f.claim(c, o, spec, o.path+"spec", o.name, o.labels, false)
		}
		return f.templates(c, o, src.templates)
	}
	return nil
}

// templates applies the storage rules to each claim template of the
// sequence at path (a StatefulSet's volumeClaimTemplates).
func (f storageFilter) templates(c *docContext, o *objectInfo, path []string) error {
	seq, err := descend(o, path, yaml.SequenceNode)
	if err != nil || seq == nil {
		return err
	}
	for i, t := range seq.Content {
		t = resolve(t)
		tPath := fmt.Sprintf("%s%s[%d]", o.path, strings.Join(path, "."), i)
		if err := wrongKind(o, t, yaml.MappingNode, tPath); err != nil {
			return err
		}
		spec := get(t, "spec")
		if err := wrongKind(o, spec, yaml.MappingNode, tPath+".spec"); err != nil {
			return err
		}
		if spec == nil || spec.Kind != yaml.MappingNode {
			continue
		}
		meta := get(t, "metadata")
		if err := f.claim(c, o, spec, tPath+".spec", str(meta, "name"), stringMap(get(meta, "labels"), "volumeClaimTemplate labels"), true); err != nil {
			return err
		}
	}
	return nil
}

// rule returns the first storage rule matching a claim, and its label for
// reports; nil when none does.
func (f storageFilter) rule(view policy.Object) (*policy.StorageRule, string) {
	for i := range f.storage.Rules {
		if r := &f.storage.Rules[i]; r.Match.Matches(view) {
			return r, ruleLabel("storage.rules", i, r.Name)
		}
	}
	return nil, ""
}

// claim applies the storage rules to a PersistentVolumeClaim spec or a
// volumeClaimTemplate spec.
func (f storageFilter) claim(c *docContext, o *objectInfo, spec *yaml.Node, path, claimName string, claimLabels map[string]string, template bool) error {
	rule, ruleName := f.rule(policy.Object{Kind: o.kind, Name: o.name, Namespace: o.namespace, Labels: []map[string]string{o.labels, claimLabels}, ClaimName: claimName})
	ed := &editor{c: c, o: o, rule: ruleName}
	current := get(spec, "storageClassName")
	fieldPath := path + ".storageClassName"
	if !isNull(current) {
		if current.Kind != yaml.ScalarNode || current.Value == "" || rule == nil || !rule.Override || current.Value == rule.StorageClass {
			return nil // explicit class (including "") is kept
		}
		warning := ""
		if template {
			warning = "volumeClaimTemplates are immutable: upgrading an existing release with a changed storageClassName fails; delete the StatefulSet with --cascade=orphan first"
		}
		return ed.replace(spec, current, fieldPath, rule.StorageClass, warning)
	}
	class := f.storage.DefaultClass
	if rule != nil {
		class = rule.StorageClass
	} else {
		ed.rule = "storage.defaultClass"
	}
	if class == "" {
		return nil
	}
	if err := c.editable(spec, path); err != nil {
		return err
	}
	// Recorded at the spec's line with no old value, also when the class
	// was an explicit null.
	value := strNode(class)
	if err := c.doc.SetKey(spec, "storageClassName", value); err != nil {
		return errAt(spec.Line, "%s: %v", fieldPath, err)
	}
	c.record(o, spec.Line, fieldPath, nil, value, ed.rule, "")
	return nil
}
