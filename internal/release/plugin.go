package release

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kommons/kommons/internal/imagefs"
)

// PluginName is the Helm 4 post-renderer plugin (plugins/kommons-postrender).
const PluginName = "kommons-postrender"

// PluginArchiveName is the plugin archive's file name of version for p.
// Helm 4 installs a local archive from the directory named like the file up
// to its version (kommons-postrender-x.y.z-... holds kommons-postrender/).
func PluginArchiveName(version string, p Platform) string {
	return fmt.Sprintf("%s-%s-%s-%s.tgz", PluginName, version, p.OS, p.Arch)
}

var pluginVersionRE = regexp.MustCompile(`(?m)^version: .*$`)

// WritePluginArchive writes the Helm 4 plugin archive of p at path,
// deterministically: kommons-postrender/plugin.yaml (the repository's, its
// version set to the release) and kommons-postrender/bin/postrender-<os>-<arch>
// (the release's postrender binary), where plugin.yaml's platformCommand
// expects it. `helm plugin install <archive>` installs it.
func WritePluginArchive(path, repo, version string, p Platform, postrender []byte, mtime time.Time) error {
	meta, err := os.ReadFile(filepath.Join(repo, "plugins", PluginName, "plugin.yaml"))
	if err != nil {
		return fmt.Errorf("release: plugin: %w", err)
	}
	if !pluginVersionRE.Match(meta) {
		return fmt.Errorf("release: plugin: plugins/%s/plugin.yaml has no version line", PluginName)
	}
	if len(postrender) == 0 {
		return fmt.Errorf("release: plugin: no postrender binary for %s", p)
	}
	meta = pluginVersionRE.ReplaceAll(meta, []byte("version: "+version))
	entries := []imagefs.Entry{
		imagefs.Dir(PluginName, 0o755),
		imagefs.Dir(PluginName+"/bin", 0o755),
		imagefs.File(PluginName+"/bin/postrender-"+p.OS+"-"+p.Arch, 0o755, postrender),
		imagefs.File(PluginName+"/plugin.yaml", 0o644, meta),
	}
	return writeTarGz(path, entries, mtime)
}
