package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildBinary compiles the real command once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "postrender")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

const policyPath = "../../pkg/postrender/testdata/policy.yaml"

func runBin(t *testing.T, bin string, stdin []byte, env []string, args ...string) (stdout, stderr []byte, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.Bytes(), e.Bytes(), code
}

func TestCommand(t *testing.T) {
	bin := buildBinary(t)
	input, err := os.ReadFile("../../pkg/postrender/testdata/hazards/storage.yaml")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile("../../pkg/postrender/testdata/hazards/storage.golden")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("filter stdin to stdout", func(t *testing.T) {
		out, stderr, code := runBin(t, bin, input, nil, "--config="+policyPath)
		if code != 0 || !bytes.Equal(out, golden) {
			t.Fatalf("exit %d, stderr %s\noutput:\n%s", code, stderr, out)
		}
	})
	t.Run("-f and --input", func(t *testing.T) {
		out, _, code := runBin(t, bin, nil, nil, "-f", policyPath, "--input", "../../pkg/postrender/testdata/hazards/storage.yaml")
		if code != 0 || !bytes.Equal(out, golden) {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("check reports changes with exit 1 and writes nothing", func(t *testing.T) {
		out, stderr, code := runBin(t, bin, input, nil, "-f", policyPath, "--check", "--log-format=text")
		if code != exitChanged || len(out) != 0 || !strings.Contains(string(stderr), "change(s) would be made") {
			t.Fatalf("exit %d, stdout %q, stderr %s", code, out, stderr)
		}
		_, _, code = runBin(t, bin, golden, nil, "-f", policyPath, "--check")
		if code != exitOK {
			t.Fatalf("check on already placed output: exit %d", code)
		}
	})
	t.Run("json report", func(t *testing.T) {
		_, stderr, code := runBin(t, bin, input, nil, "-f", policyPath, "--report=json", "--log-level=error")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var changes []map[string]any
		if err := json.Unmarshal(stderr, &changes); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, stderr)
		}
		if len(changes) != 7 || changes[0]["path"] != "spec.storageClassName" || changes[0]["new"] != "standard" || changes[0]["rule"] != "storage.defaultClass" {
			t.Fatalf("report = %v", changes)
		}
	})
	t.Run("text report", func(t *testing.T) {
		_, stderr, _ := runBin(t, bin, input, nil, "-f", policyPath, "--report", "--log-level=error")
		for _, want := range []string{"DOC", "PATH", "spec.storageClassName", "old-class", "premium", "storage.rules[1] legacy-premium (override)", "7 change(s)"} {
			if !strings.Contains(string(stderr), want) {
				t.Errorf("text report lacks %q:\n%s", want, stderr)
			}
		}
	})
	t.Run("shorthand flags without a file", func(t *testing.T) {
		in := []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: c\nspec:\n  resources: {}\n")
		out, stderr, code := runBin(t, bin, in, nil, "--storage-class", "fast", "--pool", "name=db,nodeSelector=agentpool=db,taint=dedicated=db:NoSchedule", "--default-pool", "db")
		want := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n  nodeSelector:\n    agentpool: db\n  tolerations:\n  - key: dedicated\n    operator: Equal\n    value: db\n    effect: NoSchedule\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: c\nspec:\n  resources: {}\n  storageClassName: fast\n"
		if code != 0 || string(out) != want {
			t.Fatalf("exit %d, stderr %s\ngot:\n%s", code, stderr, out)
		}
	})
	t.Run("malformed input: exit 3, message with document, source and line, empty stdout", func(t *testing.T) {
		bad := append(append([]byte{}, input...), []byte("---\n# Source: chart/templates/broken.yaml\napiVersion: v1\nkind: Pod\nspec: [\n")...)
		out, stderr, code := runBin(t, bin, bad, nil, "-f", policyPath, "--log-format=text")
		if code != exitInput || len(out) != 0 {
			t.Fatalf("exit %d, stdout %d bytes", code, len(out))
		}
		specLine := bytes.Count(input, []byte("\n")) + 6 // end of stream, where the unclosed "spec: [" is detected
		for _, want := range []string{"document 6", "chart/templates/broken.yaml", fmt.Sprintf("line %d:", specLine)} {
			if !strings.Contains(string(stderr), want) {
				t.Errorf("stderr lacks %q: %s", want, stderr)
			}
		}
	})
	t.Run("policy errors: exit 2 naming the field", func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "p.yaml")
		if err := os.WriteFile(p, []byte("pools:\n- name: db\n  nodeSelectr: {a: b}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := runBin(t, bin, input, nil, "-f", p)
		if code != exitUsage || len(out) != 0 || !strings.Contains(string(stderr), "pools[0].nodeSelectr") {
			t.Fatalf("exit %d, stderr %s", code, stderr)
		}
		_, _, code = runBin(t, bin, input, nil, "--bogus")
		if code != exitUsage {
			t.Fatalf("unknown flag: exit %d", code)
		}
		// --validate was a no-op (every document is validated) and is gone.
		_, stderr, code = runBin(t, bin, input, nil, "-f", policyPath, "--validate")
		if code != exitUsage || !strings.Contains(string(stderr), "validate") {
			t.Fatalf("--validate: exit %d, stderr %s", code, stderr)
		}
	})
	t.Run("helm 4 plugin mode writes the error to a log file", func(t *testing.T) {
		cache := t.TempDir()
		_, _, code := runBin(t, bin, []byte("kind: Pod\nspec: [\n"), []string{"HELM_PLUGIN_NAME=kommons-postrender", "XDG_CACHE_HOME=" + cache, "HOME=" + cache}, "-f", policyPath)
		if code != exitInput {
			t.Fatalf("exit %d", code)
		}
		data, err := os.ReadFile(filepath.Join(cache, "kommons-postrender", "last-error.log"))
		if err != nil || !strings.Contains(string(data), "document 0") || !strings.Contains(string(data), "exit 3") {
			t.Fatalf("error log: %v %q", err, data)
		}
	})
	t.Run("env fallback", func(t *testing.T) {
		out, _, code := runBin(t, bin, input, []string{"POSTRENDER_CONFIG=" + policyPath}, "--log-level=error")
		if code != 0 || !bytes.Equal(out, golden) {
			t.Fatalf("exit %d", code)
		}
	})
	t.Run("help lists exit codes", func(t *testing.T) {
		_, stderr, code := runBin(t, bin, nil, nil, "--help")
		if code != 0 || !strings.Contains(string(stderr), "Exit codes:") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
	})
}
