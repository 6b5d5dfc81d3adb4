package nodeimages

import (
	"archive/tar"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// Debian's tape group holds gid 26, CloudNativePG's postgres gid: it goes
// (from group and gshadow) only when it has that gid.
func TestDropGroupWithID(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	write := func(name, content string) {
		require.NoError(t, os.WriteFile(filepath.Join(root, "etc", name), []byte(content), 0o640))
	}
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(root, "etc", name))
		require.NoError(t, err)
		return string(data)
	}
	write("group", "root:x:0:\ntape:x:26:\ntapestry:x:27:\npostgres:x:105:\n")
	write("gshadow", "root:*::\ntape:*::\ntapestry:*::\npostgres:!::\n")
	require.NoError(t, dropGroupWithID(root, 26, "tape"))
	assert.Equal(t, "root:x:0:\ntapestry:x:27:\npostgres:x:105:\n", read("group"))
	assert.Equal(t, "root:*::\ntapestry:*::\npostgres:!::\n", read("gshadow"))
	info, err := os.Stat(filepath.Join(root, "etc", "gshadow"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm(), "mode kept")

	// Another gid: nothing changes.
	write("group", "tape:x:30:\n")
	write("gshadow", "tape:*::\n")
	require.NoError(t, dropGroupWithID(root, 26, "tape"))
	assert.Equal(t, "tape:x:30:\n", read("group"))
	assert.Equal(t, "tape:*::\n", read("gshadow"))
}

// The operator image holds the manager where the release manifest's
// Deployment and the operand pods' bootstrap-controller look for it; the
// operand image has what CloudNativePG requires (its container_images.md)
// with the postgres user at uid 26.
func TestBuildCNPG(t *testing.T) {
	if testing.Short() {
		t.Skip("builds container images (minutes when the cache is cold)")
	}
	var why string
	if os.Geteuid() != 0 {
		why = "building the Debian root filesystem needs root"
	} else if _, err := exec.LookPath("debootstrap"); err != nil {
		why = "debootstrap is not installed"
	} else if _, err := toolcache.Binary("cnpg", "CNPG_VERSION", "manager", ""); err != nil {
		why = err.Error()
	}
	if why != "" {
		toolcache.Missing(t, "building the CloudNativePG images", errors.New(why))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	set, err := BuildCNPG(ctx, t.Logf)
	require.NoError(t, err)

	data, err := os.ReadFile(set.Manifest)
	require.NoError(t, err)
	assert.Contains(t, string(data), CNPGUpstreamImage+":"+strings.TrimPrefix(set.Version, "v"), "the manifest names the upstream image")

	op, err := tarball.ImageFromPath(set.Operator.Path, nil)
	require.NoError(t, err)
	cf, err := op.ConfigFile()
	require.NoError(t, err)
	assert.Equal(t, []string{CNPGManager}, cf.Config.Entrypoint)
	assert.Equal(t, "/", cf.Config.WorkingDir, "bootstrap copies ./manager from the working directory")
	assert.Equal(t, "65532:65532", cf.Config.User)
	assert.Regexp(t, regexp.MustCompile(`^`+regexp.QuoteMeta(strings.TrimPrefix(set.Version, "v"))+`-[0-9a-f]{12}$`), set.Operator.Tag)
	files := imageFiles(t, op)
	arch := "operator/manager_" + runtime.GOARCH
	require.NotNil(t, files["manager"])
	assert.Equal(t, byte(tar.TypeSymlink), files["manager"].Typeflag)
	assert.Equal(t, arch, files["manager"].Linkname, "the operator finds its architectures in operator/manager_*")
	require.NotNil(t, files[arch])
	assert.Equal(t, byte(tar.TypeReg), files[arch].Typeflag)
	assert.NotZero(t, files[arch].Mode&0o111, "the manager is executable")

	pg, err := tarball.ImageFromPath(set.Operand.Path, nil)
	require.NoError(t, err)
	cf, err = pg.ConfigFile()
	require.NoError(t, err)
	major := strconv.Itoa(CNPGPostgresMajor)
	assert.Regexp(t, regexp.MustCompile(`^`+major+`-[0-9a-f]{12}$`), set.Operand.Tag, "the tag starts with the major version")
	assert.Empty(t, cf.Config.Entrypoint, "CloudNativePG sets the command")
	assert.Equal(t, "26:26", cf.Config.User)
	require.NotEmpty(t, cf.Config.Env)
	assert.Equal(t, "PATH="+cnpgPostgresBin+":", cf.Config.Env[0][:len("PATH="+cnpgPostgresBin+":")])
	assert.Contains(t, cf.Config.Env, "LANG=C.UTF-8")
	files = imageFiles(t, pg)
	for _, f := range []string{"initdb", "postgres", "pg_ctl", "pg_controldata", "pg_basebackup", "pg_rewind"} {
		hdr := files[strings.TrimPrefix(cnpgPostgresBin, "/")+"/"+f]
		if assert.NotNil(t, hdr, f) && hdr.Typeflag == tar.TypeReg {
			assert.NotZero(t, hdr.Mode&0o111, "%s is executable", f)
		}
	}
	for _, f := range []string{"usr/bin/barman-cloud-backup", "usr/bin/barman-cloud-wal-archive", "usr/lib/locale/C.utf8", "usr/bin/du"} {
		assert.NotNil(t, files[f], f)
	}
	passwd := readImageFile(t, pg, "etc/passwd")
	assert.Regexp(t, regexp.MustCompile(`(?m)^postgres:x:26:26:`), passwd)
	group := readImageFile(t, pg, "etc/group")
	assert.Regexp(t, regexp.MustCompile(`(?m)^postgres:x:26:`), group)
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^tape:`), group)
	assert.Nil(t, files["var/lib/postgresql/"+major+"/main"], "the install-time cluster is gone")
	assert.Nil(t, files["usr/sbin/policy-rc.d"])

	// PgBouncer: the binary where the pooler's instance manager runs it,
	// uid 998 named pgbouncer (peer authentication of the admin console).
	pb, err := tarball.ImageFromPath(set.PgBouncer.Path, nil)
	require.NoError(t, err)
	cf, err = pb.ConfigFile()
	require.NoError(t, err)
	assert.Empty(t, cf.Config.Entrypoint, "CloudNativePG sets the command")
	assert.Equal(t, "998:996", cf.Config.User)
	files = imageFiles(t, pb)
	bin := files[strings.TrimPrefix(CNPGPgBouncerBinary, "/")]
	require.NotNil(t, bin, CNPGPgBouncerBinary)
	assert.Equal(t, byte(tar.TypeSymlink), bin.Typeflag)
	assert.Equal(t, "../sbin/pgbouncer", bin.Linkname)
	require.NotNil(t, files["usr/sbin/pgbouncer"])
	assert.NotZero(t, files["usr/sbin/pgbouncer"].Mode&0o111, "pgbouncer is executable")
	assert.Regexp(t, regexp.MustCompile(`(?m)^pgbouncer:x:998:996:`), readImageFile(t, pb, "etc/passwd"))
	assert.Regexp(t, regexp.MustCompile(`(?m)^pgbouncer:x:996:`), readImageFile(t, pb, "etc/group"))
	status := readImageFile(t, pb, "var/lib/dpkg/status")
	m := regexp.MustCompile(`(?m)^Package: pgbouncer\n(?:[^\n]+\n)*?Version: (\S+)`).FindStringSubmatch(status)
	require.NotNil(t, m, "pgbouncer in dpkg's status")
	assert.True(t, versionAtLeast(m[1], CNPGPgBouncerMinVersion), "pgbouncer %s >= %s", m[1], CNPGPgBouncerMinVersion)
	t.Logf("PgBouncer image %s: pgbouncer %s", set.PgBouncer.Ref(), m[1])
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"1.24.1-1": true, "1.21.0-1": true, "1.18.0-1": false, "1:1.21-2": true, "1.2": false, "2.0": true, "1.21": true} {
		assert.Equal(t, want, versionAtLeast(v, "1.21"), v)
	}
}

// ensureUser adds a missing user and group with the given ids, and refuses
// ids another entry holds.
func TestEnsureUser(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	for f, c := range map[string]string{"passwd": "root:x:0:0:root:/root:/bin/bash\n", "group": "root:x:0:\n", "shadow": "root:*:1::::::\n"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, "etc", f), []byte(c), 0o640))
	}
	require.NoError(t, ensureUser(root, "pgbouncer", 998, 996, "/var/lib/pgbouncer"))
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	require.NoError(t, err)
	assert.Equal(t, "root:x:0:0:root:/root:/bin/bash\npgbouncer:x:998:996:PgBouncer:/var/lib/pgbouncer:/usr/sbin/nologin\n", string(passwd))
	group, err := os.ReadFile(filepath.Join(root, "etc/group"))
	require.NoError(t, err)
	assert.Equal(t, "root:x:0:\npgbouncer:x:996:\n", string(group))
	err = ensureUser(root, "other", 0, 997, "/x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already held by root")
}
