package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsageErrors checks that invalid flags and policy values stop the
// command with exit 2 and a message naming the flag or field, before any
// input is read.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badValue := filepath.Join(dir, "bad-value.yaml")
	if err := os.WriteFile(badValue, []byte("pools:\n- name: db\n  nodeSelector: {kommons.io/pool: 'bad value!'}\nplacement: {defaultPool: db}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"negative --workers", []string{"-f", policyPath, "--workers", "-1"}, nil, []string{"--workers", "-1"}},
		{"negative POSTRENDER_WORKERS", []string{"-f", policyPath}, map[string]string{"POSTRENDER_WORKERS": "-3"}, []string{"--workers", "POSTRENDER_WORKERS", "-3"}},
		{"invalid label value in the policy file", []string{"-f", badValue}, nil, []string{"pools[0].nodeSelector.kommons.io/pool", "bad value!"}},
		{"invalid label value in --pool", []string{"--pool", "name=db,nodeSelector=pool=" + strings.Repeat("x", 64), "--default-pool", "db"}, nil, []string{"pools[0].nodeSelector.pool", "63"}},
		{"invalid label key in --place", []string{"--pool", "name=db,nodeSelector=pool=db", "--place", "pool=db,label=bad key=x"}, nil, []string{"placement.rules[0].match.labels", "bad key"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := run(append(tc.args, "--log-format=text"), strings.NewReader("apiVersion: v1\nkind: Pod\nspec: {}\n"), &stdout, &stderr)
			if code != exitUsage || stdout.Len() != 0 {
				t.Fatalf("exit %d (want %d), stdout %q, stderr %s", code, exitUsage, stdout.String(), stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
		})
	}
}
