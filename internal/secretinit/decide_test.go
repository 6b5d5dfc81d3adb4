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
