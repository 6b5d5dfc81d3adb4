package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRunRefusesBadInvocations(t *testing.T) {
	t.Setenv("KOMMONS_RELEASE_VERSION", "")
	t.Setenv("HELM_SIGNING_KEY", "")
	t.Setenv("HELM_SIGNING_KEYRING", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "VERSION="},
		{[]string{"--release-version", "v1.2.3"}, "no leading v"},
		{[]string{"--nope"}, "--help"},
		{[]string{"--release-version", "1.2.3", "--registry", "oci://127.0.0.1:5000/kommons"}, "host[:port][/path]"},
		{[]string{"--publish-only", "--registry", ""}, "host[:port][/path]"},
		{[]string{"--publish-only", "--dry-run"}, "exclude each other"},
		{[]string{"--release-version", "1.2.3", "--plugin-key", "release@kommons.io"}, "go together"},
	} {
		var out, errw bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errw); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", tc.args, code, exitUsage, errw.String())
		}
		if !strings.Contains(errw.String(), tc.want) {
			t.Errorf("%v: %q lacks %q", tc.args, errw.String(), tc.want)
		}
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, &out, &out); code != exitOK || !strings.Contains(out.String(), "--publish-only") {
		t.Errorf("--help: exit %d\n%s", code, out.String())
	}
}
