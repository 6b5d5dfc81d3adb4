package main

import (
	"bytes"
	"encoding/json"
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

// TestRefusedHazards runs every hazard input that must be refused (those
// with a .error golden) through the command: exit 3, nothing on stdout, and
// the golden message (document, # Source:, line) on stderr.
func TestRefusedHazards(t *testing.T) {
	goldens, err := filepath.Glob("../../pkg/postrender/testdata/hazards/*.error")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no .error goldens: %v", err)
	}
	for _, g := range goldens {
		t.Run(filepath.Base(g), func(t *testing.T) {
			want, err := os.ReadFile(g)
			if err != nil {
				t.Fatal(err)
			}
			in, err := os.ReadFile(strings.TrimSuffix(g, ".error") + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"-f", policyPath, "--namespace", "team-a", "--log-format=json"}, bytes.NewReader(in), &stdout, &stderr)
			if code != exitInput || stdout.Len() != 0 {
				t.Fatalf("exit %d (want %d), %d bytes on stdout, stderr %s", code, exitInput, stdout.Len(), stderr.String())
			}
			var entry struct {
				Error    string `json:"error"`
				ExitCode int    `json:"exitCode"`
			}
			if err := json.Unmarshal(stderr.Bytes(), &entry); err != nil {
				t.Fatalf("stderr is not one JSON log entry: %v\n%s", err, stderr.String())
			}
			if entry.Error+"\n" != string(want) || entry.ExitCode != exitInput {
				t.Fatalf("error %q (exit %d), want %q", entry.Error, entry.ExitCode, want)
			}
		})
	}
}
