// Package policy defines the placement policy of the postrender post-renderer:
// which storage class a claim gets and which node pool a workload runs on.
// Policies are YAML files decoded strictly (unknown or duplicate fields are
// errors naming the field) and validated before any manifest is touched.
package policy

// APIVersion is the only supported policy apiVersion.
const APIVersion = "postrender.kommons.io/v1alpha1"

// Kind is the policy document's kind.
const Kind = "PlacementPolicy"

// Policy is a complete placement policy.
type Policy struct {
	// APIVersion must be postrender.kommons.io/v1alpha1 (may be omitted).
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind must be PlacementPolicy (may be omitted).
	Kind string `json:"kind,omitempty"`
	// Storage sets storage classes on PersistentVolumeClaims and StatefulSet
	// volumeClaimTemplates.
	Storage Storage `json:"storage,omitempty"`
	// Pools are the named node pools workloads can be placed on.
	Pools []Pool `json:"pools,omitempty"`
	// Placement chooses a pool for each pod template.
	Placement Placement `json:"placement,omitempty"`
	// PodTemplatePaths adds custom resources that embed a pod template.
	PodTemplatePaths []PodTemplatePath `json:"podTemplatePaths,omitempty"`
}

// Storage holds the storage-class rules.
type Storage struct {
	// DefaultClass is set on claims that have no storageClassName (absent or
	// null). Claims with an explicit empty class ("") are never changed.
	DefaultClass string `json:"defaultClass,omitempty"`
	// Rules are tried in order; the first whose match selects a claim wins.
	Rules []StorageRule `json:"rules,omitempty"`
}

// StorageRule gives matching claims a specific class.
type StorageRule struct {
	// Name identifies the rule in reports (default "storage.rules[i]").
	Name string `json:"name,omitempty"`
	// Match selects claims (PersistentVolumeClaim, or StatefulSet for its
	// volumeClaimTemplates; claimNames matches the claim's own name).
	Match Match `json:"match"`
	// StorageClass is the class to set.
	StorageClass string `json:"storageClass"`
	// Override replaces an existing non-empty class. On a StatefulSet this is
	// reported with a warning: volumeClaimTemplates are immutable, so an
	// upgrade of an existing release fails.
	Override bool `json:"override,omitempty"`
}

// Match selects objects. Every field that is set must match; list fields
// match when any entry matches. Globs support '*' (any run of characters,
// including '/') and '?' (one character).
type Match struct {
	// Kinds are object kinds (exact, e.g. StatefulSet).
	Kinds []string `json:"kinds,omitempty"`
	// Namespaces are globs on metadata.namespace, or on the release namespace
	// (--namespace, HELM_NAMESPACE) when the manifest sets none.
	Namespaces []string `json:"namespaces,omitempty"`
	// Names are globs on metadata.name (or metadata.generateName when the
	// object has no name).
	Names []string `json:"names,omitempty"`
	// Labels maps label keys to value globs; all must match. Labels are taken
	// from the object and, for workloads, its pod template (either may match).
	// "*" only requires the key to exist.
	Labels map[string]string `json:"labels,omitempty"`
	// ClaimNames are globs on the claim name: a PersistentVolumeClaim's name
	// or a volumeClaimTemplate's metadata.name. Storage rules only.
	ClaimNames []string `json:"claimNames,omitempty"`
}

// Pool describes a node pool: how a pod is steered onto it.
type Pool struct {
	// Name identifies the pool in placement rules.
	Name string `json:"name"`
	// NodeSelector labels are merged into the pod's nodeSelector.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Tolerations are appended to the pod's tolerations unless already present.
	Tolerations []Toleration `json:"tolerations,omitempty"`
	// RequiredNodeAffinity expressions are ANDed into every existing
	// nodeSelectorTerm (or form the only term when there is none).
	RequiredNodeAffinity []NodeSelectorRequirement `json:"requiredNodeAffinity,omitempty"`
	// PreferredNodeAffinity terms are appended to the preferred list.
	PreferredNodeAffinity []PreferredSchedulingTerm `json:"preferredNodeAffinity,omitempty"`
	// TopologySpread constraints are added when the pod has none with the
	// same topologyKey; an omitted labelSelector defaults to the pod
	// template's labels.
	TopologySpread []TopologySpreadConstraint `json:"topologySpread,omitempty"`
}

// Placement chooses a pool for each pod template.
type Placement struct {
	// DefaultPool is used for pod templates no rule selects (empty: leave them).
	DefaultPool string `json:"defaultPool,omitempty"`
	// Rules are tried in order; the first whose match selects a workload wins.
	Rules []PlacementRule `json:"rules,omitempty"`
}

// PlacementRule sends matching workloads to a pool, or leaves them alone.
type PlacementRule struct {
	// Name identifies the rule in reports (default "placement.rules[i]").
	Name string `json:"name,omitempty"`
	// Match selects workloads (claimNames is not allowed).
	Match Match `json:"match"`
	// Pool is the pool to place matching workloads on.
	Pool string `json:"pool,omitempty"`
	// Skip leaves matching workloads untouched (e.g. DaemonSets that must run
	// on every node); Pool must then be empty.
	Skip bool `json:"skip,omitempty"`
	// Override replaces a conflicting nodeSelector value instead of failing.
	Override bool `json:"override,omitempty"`
}

// PodTemplatePath declares a custom resource kind that embeds a pod template
// (an object with metadata and spec, like a Deployment's spec.template).
type PodTemplatePath struct {
	// APIVersion restricts the entry to one group/version (optional).
	APIVersion string `json:"apiVersion,omitempty"`
	// Kind is the resource kind, e.g. Rollout.
	Kind string `json:"kind"`
	// Path is the dot-separated path to the pod template, e.g. spec.template.
	Path string `json:"path"`
}

// Toleration mirrors core/v1 Toleration.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// NodeSelectorRequirement mirrors core/v1 NodeSelectorRequirement.
type NodeSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// NodeSelectorTerm mirrors core/v1 NodeSelectorTerm.
type NodeSelectorTerm struct {
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
	MatchFields      []NodeSelectorRequirement `json:"matchFields,omitempty"`
}

// PreferredSchedulingTerm mirrors core/v1 PreferredSchedulingTerm.
type PreferredSchedulingTerm struct {
	Weight     int32            `json:"weight"`
	Preference NodeSelectorTerm `json:"preference"`
}

// LabelSelector mirrors meta/v1 LabelSelector.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement mirrors meta/v1 LabelSelectorRequirement.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// TopologySpreadConstraint mirrors the core/v1 fields postrender sets.
type TopologySpreadConstraint struct {
	MaxSkew           int32          `json:"maxSkew"`
	TopologyKey       string         `json:"topologyKey"`
	WhenUnsatisfiable string         `json:"whenUnsatisfiable"`
	LabelSelector     *LabelSelector `json:"labelSelector,omitempty"`
	MinDomains        *int32         `json:"minDomains,omitempty"`
}
