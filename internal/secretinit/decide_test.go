package secretinit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/kubeapi"
)

func str(s string) *string { return &s }

func testSpec() SecretSpec {
	return SecretSpec{
		Name: "app", Namespace: "team-a", Type: "kubernetes.io/basic-auth",
		Labels: map[string]string{"team": "a"},
		Data: map[string]Source{
			"password": {Generate: &Generate{Length: 32}},
			"username": {Value: str("team_a_app")},
			"host":     {FromSecret: &SecretRef{Name: "commons", Namespace: "commons", Key: "PGHOST"}},
			"uri":      {Template: str("postgresql://{{ .username }}:{{ urlquery .password }}@{{ .host }}/db")},
			"pgpass":   {Template: str("{{ .host }}:*:db:{{ .username }}:{{ pgpass .password }}")},
		},
	}
}

func live(rv string, data map[string]string, labels map[string]string) *kubeapi.Secret {
	d := map[string][]byte{}
	for k, v := range data {
		d[k] = []byte(v)
	}
	return &kubeapi.Secret{Metadata: kubeapi.ObjectMeta{Name: "app", Namespace: "team-a", ResourceVersion: rv, Labels: labels}, Data: d}
}

var managed = map[string]string{"team": "a", ManagedByLabel: ManagedByValue}

// TestDecide: the table of Decide's outcomes, without a server.
func TestDecide(t *testing.T) {
	from := map[string]string{"commons/commons/PGHOST": "pg.commons"}
	fresh := map[string]string{"password": "NEW:pw\\x y"}
	full := map[string]string{
		"password": "old", "username": "team_a_app", "host": "pg.commons",
		"uri":    "postgresql://team_a_app:old@pg.commons/db",
		"pgpass": "pg.commons:*:db:team_a_app:old",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name      string
		obs       Observed
		verb      Verb
		keys      []string
		meta      []string
		wantData  map[string]string // Create: whole data; Patch: the patched keys
		reasonHas string
	}{
		{name: "missing: create with the candidate",
			obs: Observed{From: from, Candidates: fresh}, verb: Create,
			keys: []string{"host", "password", "pgpass", "uri", "username"},
			wantData: map[string]string{"password": "NEW:pw\\x y", "username": "team_a_app", "host": "pg.commons",
				"uri":    "postgresql://team_a_app:NEW%3Apw%5Cx%20y@pg.commons/db",
				"pgpass": "pg.commons:*:db:team_a_app:NEW\\:pw\\\\x y"}},
		{name: "matching: unchanged",
			obs: Observed{Secret: live("7", full, managed), From: from}, verb: None},
		{name: "generated key present: never overwritten, even with a candidate",
			obs: Observed{Secret: live("7", full, managed), From: from, Candidates: fresh}, verb: None},
		{name: "generated key empty: generated",
			obs: Observed{Secret: live("7", with("password", ""), managed), From: from, Candidates: fresh}, verb: Patch,
			keys: []string{"password", "pgpass", "uri"},
			wantData: map[string]string{"password": "NEW:pw\\x y", "uri": "postgresql://team_a_app:NEW%3Apw%5Cx%20y@pg.commons/db",
				"pgpass": "pg.commons:*:db:team_a_app:NEW\\:pw\\\\x y"}},
		{name: "fact drifted: reconciled, password kept",
			obs: Observed{Secret: live("7", with("host", "old.host"), managed), From: from, Candidates: fresh}, verb: Patch,
			keys: []string{"host"}, wantData: map[string]string{"host": "pg.commons"}},
		{name: "fact missing: added",
			obs: Observed{Secret: live("7", with("username", ""), managed), From: from}, verb: Patch,
			keys: []string{"username"}, wantData: map[string]string{"username": "team_a_app"}},
		{name: "adopted: label added, values kept",
			obs: Observed{Secret: live("7", full, map[string]string{"helm": "x"}), From: from}, verb: Patch,
			meta: []string{"label " + ManagedByLabel, "label team"}},
		{name: "source missing: wait",
			obs: Observed{Candidates: fresh}, verb: Wait, reasonHas: `key "PGHOST" of Secret commons/commons`},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := Decide(testSpec(), &c.obs)
			require.NoError(t, err)
			require.Equal(t, c.verb, a.Verb)
			require.Equal(t, c.keys, a.Keys)
			require.Equal(t, c.meta, a.Metadata)
			require.Contains(t, a.Reason, c.reasonHas)
			switch a.Verb {
			case Create:
				require.Equal(t, "kubernetes.io/basic-auth", a.Secret.Type)
				require.Equal(t, managed, a.Secret.Metadata.Labels)
				got := map[string]string{}
				for k, v := range a.Secret.Data {
					got[k] = string(v)
				}
				require.Equal(t, c.wantData, got)
			case Patch:
				var p struct {
					Metadata struct {
						ResourceVersion string            `json:"resourceVersion"`
						Labels          map[string]string `json:"labels"`
					} `json:"metadata"`
					Data map[string][]byte `json:"data"`
				}
				require.NoError(t, json.Unmarshal(a.Patch, &p))
				require.Equal(t, "7", p.Metadata.ResourceVersion, "precondition")
				got := map[string]string{}
				for k, v := range p.Data {
					got[k] = string(v)
				}
				if c.wantData == nil {
					c.wantData = map[string]string{}
				}
				require.Equal(t, c.wantData, got)
			}
		})
	}
}

// TestDecideOptionalSource: an optional missing source is an empty fact.
func TestDecideOptionalSource(t *testing.T) {
	s := SecretSpec{Name: "x", Namespace: "n", Data: map[string]Source{
		"ca": {FromSecret: &SecretRef{Name: "tls", Namespace: "n", Key: "ca.crt", Optional: true}}}}
	a, err := Decide(s, &Observed{})
	require.NoError(t, err)
	require.Equal(t, Create, a.Verb)
	require.Empty(t, a.Secret.Data["ca"])
}

// TestDecideCertificate: issued once, never re-issued; labels adopted.
func TestDecideCertificate(t *testing.T) {
	c := CertificateSpec{Name: "tls", Namespace: "n", CommonName: "pg"}
	a, err := DecideCertificate(c, nil)
	require.NoError(t, err)
	require.Equal(t, Create, a.Verb)
	require.Equal(t, "kubernetes.io/tls", a.Secret.Type)
	ex := &kubeapi.Secret{Metadata: kubeapi.ObjectMeta{ResourceVersion: "3", Labels: map[string]string{ManagedByLabel: ManagedByValue}},
		Data: map[string][]byte{"tls.crt": []byte("x")}}
	a, err = DecideCertificate(c, ex)
	require.NoError(t, err)
	require.Equal(t, None, a.Verb)
	ex.Metadata.Labels = nil
	a, err = DecideCertificate(c, ex)
	require.NoError(t, err)
	require.Equal(t, Patch, a.Verb)
	require.NotContains(t, string(a.Patch), `"data"`)
}

// TestValidate: every problem at once, each naming its field path.
func TestValidate(t *testing.T) {
	s := &Spec{
		Secrets: []SecretSpec{
			{Name: "Bad_Name", Data: map[string]Source{
				"a":    {},
				"b":    {Value: str("x"), Template: str("y")},
				"c":    {Generate: &Generate{Length: 8}},
				"d":    {Generate: &Generate{Length: 32, Bytes: 32}},
				"e":    {FromSecret: &SecretRef{Name: "s"}},
				"f":    {Template: str("{{ .nope }}")},
				"g h":  {Value: str("x")},
				"tmpl": {Template: str("{{ .unclosed ")},
			}},
			{Name: "ok", Namespace: "n", Data: map[string]Source{"v": {Value: str("1")}}},
			{Name: "ok", Namespace: "n", Data: map[string]Source{"v": {Value: str("1")}}},
		},
		Certificates: []CertificateSpec{{Name: "c", DNSNames: []string{"Not A Name"}, ValidityDays: -1}},
	}
	err := s.Validate("spec.yaml", "")
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"spec.yaml",
		"secrets[0].name: \"Bad_Name\"",
		"secrets[0].namespace: required",
		"secrets[0].data.a: want exactly one of",
		"secrets[0].data.b: want exactly one of",
		"secrets[0].data.c.generate.length: 8: at least 16",
		"secrets[0].data.d.generate: want exactly one of length, bytes",
		"secrets[0].data.e.fromSecret.key: required",
		"secrets[0].data.g h: \"g h\" is not a valid Secret key",
		"secrets[0].data.tmpl.template:",
		"f.template",
		"secrets[2].name: Secret n/ok is listed twice",
		"certificates[0].commonName: required",
		"certificates[0].dnsNames[0]",
		"certificates[0].validityDays: -1",
	} {
		require.Contains(t, msg, want)
	}
}

// TestGenerateValue: lengths and alphabets.
func TestGenerateValue(t *testing.T) {
	v, err := GenerateValue(Generate{Length: 40}, nil)
	require.NoError(t, err)
	require.Len(t, v, 40)
	require.Equal(t, "", strings.Trim(v, alnum))
	b, err := GenerateValue(Generate{Bytes: 32}, nil)
	require.NoError(t, err)
	require.Len(t, b, 44)
	require.NotEqual(t, v, mustGen(t))
}

func mustGen(t *testing.T) string {
	v, err := GenerateValue(Generate{Length: 40}, nil)
	require.NoError(t, err)
	return v
}

// TestDecideFromConfigMap: a fromConfigMap key is a fact copied from the
// ConfigMap on every run, waited for while missing, empty when optional.
func TestDecideFromConfigMap(t *testing.T) {
	spec := SecretSpec{Name: "tenant", Namespace: "team-a", Data: map[string]Source{
		"ca.crt": {FromConfigMap: &ConfigMapRef{Name: "pg-ca", Namespace: "commons", Key: "ca.crt"}},
		"mode":   {Value: str("verify-full")},
	}}
	id := ConfigMapRefID(*spec.Data["ca.crt"].FromConfigMap)
	require.Equal(t, "commons/pg-ca/ca.crt", id)
	liveCA := func(ca string) *kubeapi.Secret {
		return &kubeapi.Secret{Metadata: kubeapi.ObjectMeta{ResourceVersion: "4", Labels: map[string]string{ManagedByLabel: ManagedByValue}},
			Data: map[string][]byte{"ca.crt": []byte(ca), "mode": []byte("verify-full")}}
	}
	for _, c := range []struct {
		name   string
		obs    Observed
		verb   Verb
		keys   []string
		ca     string
		reason string
	}{
		{name: "source missing: wait, naming the ConfigMap and the field",
			obs: Observed{}, verb: Wait, reason: `key "ca.crt" of ConfigMap commons/pg-ca (data.ca.crt.fromConfigMap)`},
		{name: "source present, Secret missing: create with the copy",
			obs: Observed{FromConfigMap: map[string]string{id: "PEM-1"}}, verb: Create, keys: []string{"ca.crt", "mode"}, ca: "PEM-1"},
		{name: "same value: unchanged",
			obs: Observed{Secret: liveCA("PEM-1"), FromConfigMap: map[string]string{id: "PEM-1"}}, verb: None},
		{name: "the ConfigMap changed (renewed CA): patched",
			obs: Observed{Secret: liveCA("PEM-1"), FromConfigMap: map[string]string{id: "PEM-2"}}, verb: Patch, keys: []string{"ca.crt"}, ca: "PEM-2"},
		{name: "a Secret's value of the same id is not a ConfigMap's",
			obs: Observed{Secret: liveCA("PEM-1"), From: map[string]string{id: "PEM-2"}}, verb: Wait, reason: "ConfigMap commons/pg-ca"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, err := Decide(spec, &c.obs)
			require.NoError(t, err)
			require.Equal(t, c.verb, a.Verb)
			require.Equal(t, c.keys, a.Keys)
			require.Contains(t, a.Reason, c.reason)
			switch a.Verb {
			case Create:
				require.Equal(t, c.ca, string(a.Secret.Data["ca.crt"]))
			case Patch:
				var p struct {
					Data map[string][]byte `json:"data"`
				}
				require.NoError(t, json.Unmarshal(a.Patch, &p))
				require.Equal(t, map[string][]byte{"ca.crt": []byte(c.ca)}, p.Data)
			}
		})
	}
	optional := SecretSpec{Name: "x", Namespace: "n", Data: map[string]Source{
		"ca": {FromConfigMap: &ConfigMapRef{Name: "b", Namespace: "n", Key: "ca.crt", Optional: true}}}}
	a, err := Decide(optional, &Observed{})
	require.NoError(t, err)
	require.Equal(t, Create, a.Verb)
	require.Empty(t, a.Secret.Data["ca"])
}

// TestValidateFromConfigMap: fromConfigMap's fields are checked and named,
// its namespace defaults to the Secret's.
func TestValidateFromConfigMap(t *testing.T) {
	s := &Spec{Secrets: []SecretSpec{{Name: "t", Data: map[string]Source{
		"a": {FromConfigMap: &ConfigMapRef{}},
		"b": {FromConfigMap: &ConfigMapRef{Name: "Bad_CM", Key: "k y", Namespace: "Not_NS"}},
		"c": {FromConfigMap: &ConfigMapRef{Name: "cm", Key: "ca.crt"}, FromSecret: &SecretRef{Name: "s", Key: "ca.crt"}},
	}}}}
	err := s.Validate("spec.yaml", "home")
	require.Error(t, err)
	for _, want := range []string{
		"secrets[0].data.a.fromConfigMap.name: required",
		"secrets[0].data.a.fromConfigMap.key: required",
		`secrets[0].data.b.fromConfigMap.name: "Bad_CM" is not a valid ConfigMap name`,
		`secrets[0].data.b.fromConfigMap.key: "k y" is not a valid ConfigMap key`,
		`secrets[0].data.b.fromConfigMap.namespace: "Not_NS" is not a valid namespace name`,
		"secrets[0].data.c: want exactly one of generate, value, fromSecret, fromConfigMap, template",
	} {
		require.Contains(t, err.Error(), want)
	}
	ok := &Spec{Secrets: []SecretSpec{{Name: "t", Data: map[string]Source{
		"ca.crt": {FromConfigMap: &ConfigMapRef{Name: "bundle", Key: "trust-bundle.pem"}}}}}}
	require.NoError(t, ok.Validate("spec.yaml", "home"))
	require.Equal(t, "home", ok.Secrets[0].Data["ca.crt"].FromConfigMap.Namespace)
}

// TestConfigMapValue: data first, then binaryData.
func TestConfigMapValue(t *testing.T) {
	cm := &kubeapi.ConfigMap{Data: map[string]string{"a": "1"}, BinaryData: map[string][]byte{"a": []byte("x"), "b": []byte("2")}}
	v, ok := cm.Value("a")
	require.True(t, ok)
	require.Equal(t, "1", v)
	v, ok = cm.Value("b")
	require.True(t, ok)
	require.Equal(t, "2", v)
	_, ok = cm.Value("c")
	require.False(t, ok)
}
