package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"helm.sh/helm/v3/pkg/provenance"
	"sigs.k8s.io/yaml"
)

// PluginSigning selects the PGP key signing the plugin archives, as
// `helm package --sign --keyring K --key N` does for charts.
type PluginSigning struct {
	Keyring    string // legacy (non-keybox) secret keyring: gpg --export-secret-keys >secring.gpg
	Key        string // the signing key's user ID or a part only it contains
	Passphrase []byte // unlocks the key if it is encrypted (HELM_KEY_PASSPHRASE)
}

// PluginSigner writes Helm 4 provenance files (.prov) of plugin archives.
type PluginSigner struct {
	signer *provenance.Signatory
}

// NewPluginSigner loads the signing key of s (Helm's keyring reader: a
// binary OpenPGP keyring, not GnuPG 2's keybox) and unlocks it.
func NewPluginSigner(s PluginSigning) (*PluginSigner, error) {
	if s.Keyring == "" || s.Key == "" {
		return nil, errors.New("release: plugin signing: a secret keyring and a key name are both required")
	}
	sig, err := provenance.NewFromKeyring(s.Keyring, s.Key)
	if err != nil {
		return nil, fmt.Errorf("release: plugin signing: keyring %s: %w", s.Keyring, err)
	}
	if sig.Entity == nil {
		return nil, fmt.Errorf("release: plugin signing: no key %q in %s", s.Key, s.Keyring)
	}
	err = sig.DecryptKey(func(string) ([]byte, error) {
		if len(s.Passphrase) == 0 {
			return nil, fmt.Errorf("key %q is encrypted and no passphrase was given (HELM_KEY_PASSPHRASE)", s.Key)
		}
		return s.Passphrase, nil
	})
	if err != nil && len(s.Passphrase) > 0 && sig.Entity.PrivateKey != nil && sig.Entity.PrivateKey.Encrypted {
		return nil, fmt.Errorf("release: plugin signing: key %q in %s: not unlocked (wrong HELM_KEY_PASSPHRASE?): %w", s.Key, s.Keyring, err)
	}
	if err != nil {
		return nil, fmt.Errorf("release: plugin signing: key %q in %s: %w", s.Key, s.Keyring, err)
	}
	return &PluginSigner{signer: sig}, nil
}

// Sign writes archive.prov, the provenance `helm plugin install` and `helm
// plugin verify` check (Helm 4): a PGP clear-signed message of the archive's
// plugin.yaml, the YAML document end "...", and the archive's SHA-256 under
// files:<archive's base name>. The archive itself is not changed; the
// signature (its time) differs per run.
func (s *PluginSigner) Sign(archive string) error {
	data, err := os.ReadFile(archive)
	if err != nil {
		return fmt.Errorf("release: plugin signing: %w", err)
	}
	meta, err := archivePluginYAML(data)
	if err != nil {
		return fmt.Errorf("release: plugin signing: %s: %w", archive, err)
	}
	sum := sha256.Sum256(data)
	sums, err := yaml.Marshal(map[string]map[string]string{
		"files": {filepath.Base(archive): "sha256:" + hex.EncodeToString(sum[:])},
	})
	if err != nil {
		return fmt.Errorf("release: plugin signing: %w", err)
	}
	// "---" may not start a clear-signed line: Helm separates the parts by "...".
	msg := append(bytes.TrimRight(meta, "\n"), "\n...\n"...)
	msg = append(msg, sums...)

	var out bytes.Buffer
	w, err := clearsign.Encode(&out, s.signer.Entity.PrivateKey, &packet.Config{DefaultHash: crypto.SHA512})
	if err != nil {
		return fmt.Errorf("release: plugin signing: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("release: plugin signing: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("release: plugin signing: sign %s: %w", archive, err)
	}
	if err := os.WriteFile(archive+".prov", out.Bytes(), 0o644); err != nil {
		return fmt.Errorf("release: plugin signing: %w", err)
	}
	return nil
}

// archivePluginYAML is <plugin>/plugin.yaml of a plugin .tgz.
func archivePluginYAML(tgz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no plugin.yaml")
		}
		if err != nil {
			return nil, err
		}
		if path.Base(h.Name) == "plugin.yaml" {
			return io.ReadAll(tr)
		}
	}
}
