package policy

import (
	"strings"
	"testing"
)

func TestParseRejectsUnknownAndInvalidFields(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"unknown top-level field", "storage: {defaultClass: a}\nnodePools: []\n", `unknown field "nodePools"`},
		{"unknown nested field", "pools:\n- name: db\n  nodeSelectors: {a: b}\n", `unknown field "pools[0].nodeSelectors"`},
		{"duplicate field", "storage: {defaultClass: a}\nstorage: {defaultClass: b}\n", `"storage" already set`},
		{"unknown pool", "placement: {defaultPool: gpu}\n", "placement.defaultPool: unknown pool \"gpu\""},
		{"rule without pool", "pools: [{name: db, nodeSelector: {a: b}}]\nplacement: {rules: [{match: {kinds: [Pod]}}]}\n", "placement.rules[0].pool: required"},
		{"bad toleration operator", "pools: [{name: db, tolerations: [{key: a, operator: Is}]}]\n", `pools[0].tolerations[0].operator: "Is"`},
		{"bad effect", "pools: [{name: db, tolerations: [{key: a, effect: NoRun}]}]\n", `pools[0].tolerations[0].effect`},
		{"empty pool", "pools: [{name: db}]\n", `pools[0]: pool "db" sets nothing`},
		{"duplicate pool", "pools: [{name: db, nodeSelector: {a: b}}, {name: db, nodeSelector: {a: c}}]\n", `pools[1].name: duplicate pool "db"`},
		{"claimNames in placement", "pools: [{name: db, nodeSelector: {a: b}}]\nplacement: {rules: [{pool: db, match: {claimNames: [x]}}]}\n", "only allowed in storage rules"},
		{"storage rule without class", "storage: {rules: [{match: {kinds: [PersistentVolumeClaim]}}]}\n", "storage.rules[0].storageClass: required"},
		{"bad class", "storage: {defaultClass: Fast_SSD}\n", "storage.defaultClass"},
		{"bad apiVersion", "apiVersion: v2\n", "apiVersion"},
		{"bad weight", "pools: [{name: db, preferredNodeAffinity: [{weight: 0, preference: {matchExpressions: [{key: a, operator: Exists}]}}]}]\n", "weight"},
		{"bad spread", "pools: [{name: db, topologySpread: [{topologyKey: zone, maxSkew: 1, whenUnsatisfiable: Maybe}]}]\n", "whenUnsatisfiable"},
		{"bad template path", "podTemplatePaths: [{kind: Rollout, path: 'spec..template'}]\n", "podTemplatePaths[0].path"},
		{"bad nodeSelector value", "pools: [{name: db, nodeSelector: {kommons.io/pool: 'bad value!'}}]\n", `pools[0].nodeSelector.kommons.io/pool: "bad value!" is not a valid label value`},
		{"nodeSelector value over 63 characters", "pools: [{name: db, nodeSelector: {pool: " + strings.Repeat("a", 64) + "}}]\n", `pools[0].nodeSelector.pool: "aaaa`},
		{"nodeSelector key name over 63 characters", "pools: [{name: db, nodeSelector: {example.com/" + strings.Repeat("k", 64) + ": db}}]\n", `pools[0].nodeSelector: "example.com/kkkk`},
		{"nodeSelector key with a bad prefix", "pools: [{name: db, nodeSelector: {Example.COM/pool: db}}]\n", `pools[0].nodeSelector: "Example.COM/pool" is not a valid label key`},
		{"match label key", "pools: [{name: db, nodeSelector: {a: b}}]\nplacement: {rules: [{pool: db, match: {labels: {'bad key': x}}}]}\n", `placement.rules[0].match.labels: "bad key" is not a valid label key`},
		{"toleration key", "pools: [{name: db, tolerations: [{key: 'a b', operator: Exists}]}]\n", `pools[0].tolerations[0].key: "a b" is not a valid taint key`},
		{"toleration value", "pools: [{name: db, tolerations: [{key: a, value: 'x y', effect: NoSchedule}]}]\n", `pools[0].tolerations[0].value: "x y" is not a valid taint value`},
		{"affinity key", "pools: [{name: db, requiredNodeAffinity: [{key: 'a b', operator: Exists}]}]\n", `pools[0].requiredNodeAffinity[0].key: "a b" is not a valid label key`},
		{"affinity value", "pools: [{name: db, requiredNodeAffinity: [{key: a, operator: In, values: [ok, 'not ok']}]}]\n", `pools[0].requiredNodeAffinity[0].values[1]: "not ok" is not a valid label value`},
		{"affinity Gt value", "pools: [{name: db, requiredNodeAffinity: [{key: a, operator: Gt, values: [x]}]}]\n", `pools[0].requiredNodeAffinity[0].values[0]: "x" is not an integer`},
		{"spread topologyKey", "pools: [{name: db, topologySpread: [{topologyKey: 'a b', maxSkew: 1, whenUnsatisfiable: ScheduleAnyway}]}]\n", `pools[0].topologySpread[0].topologyKey: "a b" is not a valid label key`},
		{"spread selector value", "pools: [{name: db, topologySpread: [{topologyKey: zone, maxSkew: 1, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: 'a b'}}}]}]\n", `pools[0].topologySpread[0].labelSelector.matchLabels.app: "a b" is not a valid label value`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestExamplePoliciesParse(t *testing.T) {
	for _, path := range []string{
		"../testdata/policy.yaml",
		"../../../examples/policies/db-app-split.yaml",
		"../../../examples/policies/aks.yaml",
		"../../../examples/policies/eks.yaml",
		"../../../examples/policies/gke.yaml",
	} {
		if _, err := Load(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "a/b.c", true},
		{"db-*", "db-postgresql", true},
		{"db-*", "app-db", false},
		{"*-postgresql", "release-postgresql", true},
		{"*postgres*", "my-postgres-0", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"*a*b", "xaxxb", true},
		{"*a*b", "xaxxbc", false},
	}
	for _, tc := range cases {
		if got := Glob(tc.pattern, tc.s); got != tc.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	pg := Object{Kind: "StatefulSet", Name: "rel-postgresql", Namespace: "team-a",
		Labels: []map[string]string{{"app.kubernetes.io/name": "postgresql"}, {"role": "primary"}}, ClaimName: "data"}
	cases := []struct {
		name  string
		match Match
		want  bool
	}{
		{"empty match selects everything", Match{}, true},
		{"kind", Match{Kinds: []string{"Deployment", "StatefulSet"}}, true},
		{"wrong kind", Match{Kinds: []string{"Deployment"}}, false},
		{"name glob", Match{Names: []string{"*-postgresql"}}, true},
		{"namespace glob", Match{Namespaces: []string{"team-*"}}, true},
		{"wrong namespace", Match{Namespaces: []string{"prod"}}, false},
		{"object label", Match{Labels: map[string]string{"app.kubernetes.io/name": "postgres*"}}, true},
		{"template label", Match{Labels: map[string]string{"role": "primary"}}, true},
		{"labels must match in one set", Match{Labels: map[string]string{"role": "primary", "app.kubernetes.io/name": "postgresql"}}, false},
		{"label exists", Match{Labels: map[string]string{"role": "*"}}, true},
		{"missing label", Match{Labels: map[string]string{"cnpg.io/cluster": "*"}}, false},
		{"claim name", Match{ClaimNames: []string{"data", "wal"}}, true},
		{"all fields", Match{Kinds: []string{"StatefulSet"}, Names: []string{"rel-*"}, Namespaces: []string{"team-a"}, ClaimNames: []string{"d*"}}, true},
	}
	for _, tc := range cases {
		if got := tc.match.Matches(pg); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestShorthand(t *testing.T) {
	p := &Policy{}
	s := Shorthand{
		StorageClass: "fast",
		Pools: []string{
			"name=db,nodeSelector=agentpool=db,taint=dedicated=db:NoSchedule,taint=gpu:NoExecute,spread=topology.kubernetes.io/zone,require=kubernetes.io/arch=amd64|arm64",
			"name=app,nodeSelector=agentpool=app",
		},
		Rules:       []string{"pool=db,kind=StatefulSet,label=app.kubernetes.io/name=postgresql", "skip=true,kind=DaemonSet"},
		DefaultPool: "app",
	}
	if err := s.Apply(p); err != nil {
		t.Fatal(err)
	}
	db := p.Pools[0]
	if db.NodeSelector["agentpool"] != "db" || len(db.Tolerations) != 2 {
		t.Fatalf("pool db = %+v", db)
	}
	if got := db.Tolerations[0]; got != (Toleration{Key: "dedicated", Operator: "Equal", Value: "db", Effect: "NoSchedule"}) {
		t.Errorf("taint = %+v", got)
	}
	if got := db.Tolerations[1]; got != (Toleration{Key: "gpu", Operator: "Exists", Effect: "NoExecute"}) {
		t.Errorf("taint without value = %+v", got)
	}
	if r := db.RequiredNodeAffinity[0]; r.Key != "kubernetes.io/arch" || r.Operator != "In" || len(r.Values) != 2 {
		t.Errorf("require = %+v", r)
	}
	if p.Storage.DefaultClass != "fast" || p.Placement.DefaultPool != "app" || len(p.Placement.Rules) != 2 || !p.Placement.Rules[1].Skip {
		t.Errorf("policy = %+v", p)
	}
	for _, bad := range []struct{ pool, want string }{
		{"nodeSelector=a=b", "name=... is required"},
		{"name=x,colour=blue", `unknown field "colour"`},
		{"name=x,taint=novalue", "want key=value:Effect"},
		{"name=x,nodeSelector", "want field=value"},
	} {
		err := Shorthand{Pools: []string{bad.pool}}.Apply(&Policy{})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("--pool %q: error %v, want %q", bad.pool, err, bad.want)
		}
	}
	if err := (Shorthand{Rules: []string{"pool=nope"}}).Apply(&Policy{}); err == nil || !strings.Contains(err.Error(), `unknown pool "nope"`) {
		t.Errorf("--place with unknown pool: %v", err)
	}
}

// TestParseReportsEveryUnknownField checks that all unknown fields are
// reported, in the order of the file with their lines, the same on every
// run (the decoder alone names one of them, picked by map order).
func TestParseReportsEveryUnknownField(t *testing.T) {
	in := `storage:
  defaultClass: standard
  defaultClas: fast
pools:
- name: db
  nodeSelectr: {a: b}
  tolerations:
  - {key: a, operator: Exists, efect: NoSchedule}
- name: app
  nodeSelector: {a: c}
  weight: 3
placement:
  defaultPool: app
  rulez: []
base: &base {name: x, colour: blue}
podTemplatePaths:
- <<: *base
  kind: Rollout
  path: spec.template
`
	want := strings.Join([]string{
		`unknown field "storage.defaultClas" (line 3)`,
		`unknown field "pools[0].nodeSelectr" (line 6)`,
		`unknown field "pools[0].tolerations[0].efect" (line 8)`,
		`unknown field "pools[1].weight" (line 11)`,
		`unknown field "placement.rulez" (line 14)`,
		`unknown field "base" (line 15)`,
		`unknown field "podTemplatePaths[0].name" (line 15)`,
		`unknown field "podTemplatePaths[0].colour" (line 15)`,
	}, "\n")
	for range 20 {
		_, err := Parse([]byte(in))
		if err == nil || err.Error() != want {
			t.Fatalf("got\n%v\nwant\n%s", err, want)
		}
	}
}
