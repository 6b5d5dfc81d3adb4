package release

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// TestPluginArchive signs this machine's Helm 4 plugin archive from the
// release with a throwaway PGP key (PluginSigner, as `make release` with
// --plugin-key), installs it with `helm plugin install <archive> --keyring
// <public keyring>` (Helm 4 verifies the .prov by default) into an empty Helm
// data home and renders the release's commons chart through it as the
// post-renderer: the db-app-split policy must send the database to the db
// pool, which the same render without the post-renderer does not. The same
// archive with one byte changed must be refused.
func TestPluginArchive(t *testing.T) {
	requireRelease(t)
	helm4 := toolcache.Require(t, "helm4", "HELM4_VERSION", "helm", "KOMMONS_HELM4")
	p := Platform{runtime.GOOS, runtime.GOARCH}
	built := filepath.Join(builtA, PluginArchiveName(testVersion, p))
	orig, err := os.ReadFile(built)
	if err != nil {
		t.Fatalf("no plugin archive for %s: %v", p, err)
	}
	secring, pubring := throwawayPGPKey(t, testSigner, "test-passphrase")
	_, otherPubring := throwawayPGPKey(t, "someone else <other@example.org>", "other")
	if _, err := NewPluginSigner(PluginSigning{Keyring: secring, Key: testSigner}); err == nil || !strings.Contains(err.Error(), "HELM_KEY_PASSPHRASE") {
		t.Fatalf("an encrypted key without a passphrase: %v, want an error naming HELM_KEY_PASSPHRASE", err)
	}
	if _, err := NewPluginSigner(PluginSigning{Keyring: secring, Key: testSigner, Passphrase: []byte("wrong")}); err == nil || !strings.Contains(err.Error(), "wrong HELM_KEY_PASSPHRASE") {
		t.Fatalf("a wrong passphrase: %v, want an error saying so", err)
	}
	if _, err := NewPluginSigner(PluginSigning{Keyring: pubring, Key: testSigner}); err == nil || !strings.Contains(err.Error(), "not a private key") {
		t.Fatalf("a public keyring: %v, want an error saying it holds no private key", err)
	}
	signer, err := NewPluginSigner(PluginSigning{Keyring: secring, Key: testSigner, Passphrase: []byte("test-passphrase")})
	if err != nil {
		t.Fatal(err)
	}
	// The release's archive (a copy: the shared build stays unsigned).
	archive := filepath.Join(t.TempDir(), filepath.Base(built))
	if err := os.WriteFile(archive, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := signer.Sign(archive); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(archive); !bytes.Equal(after, orig) {
		t.Fatal("signing changed the archive")
	}

	data := t.TempDir()
	env := append(os.Environ(), "HELM_DATA_HOME="+data, "HELM_PLUGINS="+filepath.Join(data, "plugins"),
		"HELM_CONFIG_HOME="+filepath.Join(data, "config"), "HELM_CACHE_HOME="+filepath.Join(data, "cache"))
	run := func(args ...string) (string, error) {
		cmd := exec.Command(helm4, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	helm := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}

	// One byte changed, same name, same .prov: refused before anything is installed.
	tampered := filepath.Join(t.TempDir(), filepath.Base(built))
	bad := bytes.Clone(orig)
	bad[len(bad)/2] ^= 0x01
	prov, err := os.ReadFile(archive + ".prov")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tampered+".prov", prov, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run("plugin", "install", tampered, "--keyring", pubring); err == nil || !strings.Contains(out, "sha256 sum does not match") {
		t.Fatalf("helm plugin install of a tampered archive: %v, want refused (sha256 sum does not match)\n%s", err, out)
	} else {
		t.Logf("tampered archive: refused: %s", strings.TrimSpace(out))
	}
	if list := helm("plugin", "list"); strings.Contains(list, PluginName) {
		t.Fatalf("the tampered archive was installed:\n%s", list)
	}

	// Signed by a key the keyring does not hold: refused.
	if out, err := run("plugin", "install", archive, "--keyring", otherPubring); err == nil {
		t.Fatalf("helm plugin install verified against another key's keyring:\n%s", out)
	} else {
		t.Logf("another keyring: refused: %s", strings.TrimSpace(out))
	}
	out := helm("plugin", "verify", archive, "--keyring", pubring)
	if !strings.Contains(out, testSigner) {
		t.Fatalf("helm plugin verify does not name the signer %q:\n%s", testSigner, out)
	}
	t.Logf("helm plugin verify: %s", strings.TrimSpace(out))
	helm("plugin", "install", archive, "--keyring", pubring) // verified by default
	if list := helm("plugin", "list"); !strings.Contains(list, PluginName) || !strings.Contains(list, testVersion) {
		t.Fatalf("helm plugin list does not show %s %s:\n%s", PluginName, testVersion, list)
	}
	repo, _ := toolcache.RepoRoot()
	chart := filepath.Join(builtA, "charts", "commons-"+testVersion+".tgz")
	values := filepath.Join(repo, "charts/commons/ci/tenants-backups-values.yaml")
	policy := filepath.Join(repo, "examples/policies/db-app-split.yaml")
	const placed = "kommons.io/pool: db"
	if plain := helm("template", "r", chart, "-f", values); strings.Contains(plain, placed) {
		t.Fatalf("the chart alone already renders %q", placed)
	}
	out = helm("template", "r", chart, "-f", values, "--post-renderer", PluginName, "--post-renderer-args", "--config="+policy)
	if !strings.Contains(out, placed) {
		t.Fatalf("rendered through the installed plugin, nothing is placed on the db pool:\n%.3000s", out)
	}
}

// testSigner is the user ID of throwawayPGPKey's key.
const testSigner = "kommons release test <release-test@kommons.io>"

// throwawayPGPKey generates an RSA signing key (user ID uid, encrypted
// with passphrase) with gpg in a temporary GNUPGHOME and exports it the way
// `helm package --sign` and PluginSigner read keys: the secret keyring as a
// binary OpenPGP packet stream (gpg --export-secret-keys, not GnuPG 2's
// .kbx keybox) and the public keyring the same way (gpg --export). gpg is
// required under CI=true or KOMMONS_E2E=1.
func throwawayPGPKey(t *testing.T, uid, passphrase string) (secring, pubring string) {
	t.Helper()
	gpg, err := exec.LookPath("gpg")
	if err != nil {
		toolcache.Missing(t, "gpg (Debian package gnupg)", err)
	}
	home, err := os.MkdirTemp("", "gpg-") // short: gpg-agent's socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GNUPGHOME="+home)
	t.Cleanup(func() {
		if conf, err := exec.LookPath("gpgconf"); err == nil {
			cmd := exec.Command(conf, "--kill", "all")
			cmd.Env = env
			_ = cmd.Run()
		}
		os.RemoveAll(home)
	})
	gpgOut := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(gpg, append([]string{"--batch", "--pinentry-mode", "loopback", "--passphrase", passphrase}, args...)...)
		cmd.Env = env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	gpgOut("--quick-gen-key", uid, "rsa2048", "sign", "never")
	dir := t.TempDir()
	secring, pubring = filepath.Join(dir, "secring.gpg"), filepath.Join(dir, "pubring.gpg")
	if err := os.WriteFile(secring, gpgOut("--export-secret-keys", uid), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pubring, gpgOut("--export", uid), 0o644); err != nil {
		t.Fatal(err)
	}
	return secring, pubring
}
