package nodeimages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kommons/kommons/internal/testutil/toolcache"
)

// CloudNativePG images (BuildCNPG). They are not part of Set: only the
// CloudNativePG e2e (test/e2e/cnpg) needs them, and it pushes them to the
// node's registry itself (Push).
const (
	// CNPGPostgresMajor is the PostgreSQL major version of the operand
	// image: Debian 13's (trixie) PostgreSQL, the newest Debian packages
	// with every executable CloudNativePG needs (docs/operations.md says
	// why not 18).
	CNPGPostgresMajor = 17
	// CNPGPostgresUID is the uid and gid of the postgres user in the
	// operand image: CloudNativePG's default (spec.postgresUID/GID).
	CNPGPostgresUID = 26
	// CNPGManager is the operator image's manager command: the
	// Deployment's, and the file its bootstrap-controller init container
	// copies (`/manager bootstrap /controller/manager`: it copies ./manager
	// of the working directory /) into every operand pod. As upstream, it
	// is a symbolic link to operator/manager_<GOARCH>: the operator learns
	// which architectures it can serve operand pods from those files, and
	// refuses to reconcile a Cluster ("invalid architecture: amd64")
	// without its own.
	CNPGManager = "/manager"
	// CNPGUpstreamImage is the operator image the release manifest names
	// (in the Deployment and its OPERATOR_IMAGE_NAME), without the tag.
	CNPGUpstreamImage = "ghcr.io/cloudnative-pg/cloudnative-pg"
)

// cnpgPostgresBin is the operand image's PostgreSQL bin directory, first on
// its PATH (Debian keeps initdb, postgres and pg_ctl out of /usr/bin).
var cnpgPostgresBin = fmt.Sprintf("/usr/lib/postgresql/%d/bin", CNPGPostgresMajor)

// trixiePostgresRoot is the operand image's root filesystem: Debian 13's
// PostgreSQL server with its client tools (pg_basebackup, pg_controldata),
// barman-cli-cloud for backups to object storage, and the locales package.
var trixiePostgresRoot = debianRoot{
	suite: "trixie",
	packages: []string{
		"ca-certificates", "locales", "python3", "barman-cli-cloud",
		"postgresql-" + strconv.Itoa(CNPGPostgresMajor), "postgresql-client-" + strconv.Itoa(CNPGPostgresMajor),
	},
	variant:   fmt.Sprintf("cnpg-operand uid %d", CNPGPostgresUID),
	verify:    verifyCNPGRoot,
	customize: customizeCNPGRoot,
}

// CNPGSet is the CloudNativePG operator and operand images, and the
// operator's release manifest.
type CNPGSet struct {
	// Version is the operator's version (CNPG_VERSION), e.g. v1.27.1.
	Version string
	// Operator holds the manager (static, test/cluster/build.sh cnpg) at
	// operator/manager_<GOARCH>, CNPGManager linking to it, from scratch,
	// user 65532, laid out like the upstream image.
	Operator Image
	// Operand is the PostgreSQL image of the Cluster's pods
	// (spec.imageName); its tag starts with the major version, as
	// CloudNativePG requires.
	Operand Image
	// PgBouncer is the image of the Poolers' pods (spec.template's
	// pgbouncer container): Debian 13's PgBouncer laid out as the operator
	// expects (pgbouncer.go).
	PgBouncer Image
	// Manifest is the release manifest of Version (releases/cnpg-<v>.yaml
	// of the module), naming the upstream operator image.
	Manifest string
}

// All lists the set's images (for Push).
func (s *CNPGSet) All() []Image { return []Image{s.Operator, s.Operand, s.PgBouncer} }

// BuildCNPG builds the CloudNativePG images, or takes them from the cache
// when their inputs are unchanged (like Build, whose lock it shares). The
// operand image's root filesystem needs root, debootstrap and the Debian
// mirror: build outside the real-node sandbox.
func BuildCNPG(ctx context.Context, logf func(string, ...any)) (*CNPGSet, error) {
	version, err := toolcache.Version("CNPG_VERSION")
	if err != nil {
		return nil, fmt.Errorf("nodeimages: %w", err)
	}
	manager, err := toolcache.Binary("cnpg", "CNPG_VERSION", "manager", "")
	if err != nil {
		return nil, fmt.Errorf("nodeimages: CloudNativePG manager: %w", err)
	}
	manifest := filepath.Join(filepath.Dir(manager), "cnpg.yaml")
	if _, err := os.Stat(manifest); err != nil {
		return nil, fmt.Errorf("nodeimages: CloudNativePG release manifest: %w (run test/cluster/build.sh cnpg)", err)
	}
	b, unlock, err := lockedBuilder(ctx, logf)
	if err != nil {
		return nil, err
	}
	defer unlock()

	start := time.Now()
	s := &CNPGSet{Version: version, Manifest: manifest}
	if s.Operator, err = b.cnpgOperator(manager, strings.TrimPrefix(version, "v")); err != nil {
		return nil, fmt.Errorf("nodeimages: %w", err)
	}
	if s.Operand, err = b.cnpgOperand(); err != nil {
		return nil, fmt.Errorf("nodeimages: %w", err)
	}
	if s.PgBouncer, err = b.cnpgPgBouncer(); err != nil {
		return nil, fmt.Errorf("nodeimages: %w", err)
	}
	b.logf("nodeimages: CloudNativePG %s images ready in %.1fs: %s, %s, %s", version, time.Since(start).Seconds(), s.Operator.Ref(), s.Operand.Ref(), s.PgBouncer.Ref())
	return s, nil
}

func (b *builder) cnpgOperator(manager, version string) (Image, error) {
	data, err := os.ReadFile(manager)
	if err != nil {
		return Image{}, fmt.Errorf("CloudNativePG manager: %w", err)
	}
	entries, err := scratchBase("nonroot", 65532)
	if err != nil {
		return Image{}, err
	}
	arch := "operator/manager_" + runtime.GOARCH
	entries = append(entries, dir("operator", 0o755), file(arch, 0o755, data), symlink(strings.TrimPrefix(CNPGManager, "/"), arch))
	return b.image(spec{
		name: "cnpg-operator", repository: "kommons/cloudnative-pg", tag: keyTag(version),
		entries: entries,
		config: v1.Config{Entrypoint: []string{CNPGManager}, Env: []string{defaultPath}, User: "65532:65532", WorkingDir: "/",
			ExposedPorts: map[string]struct{}{"8080/tcp": {}, "9443/tcp": {}}},
	})
}

func (b *builder) cnpgOperand() (Image, error) {
	base, err := b.debianBaseOf(trixiePostgresRoot)
	if err != nil {
		return Image{}, err
	}
	major := strconv.Itoa(CNPGPostgresMajor)
	uid := strconv.Itoa(CNPGPostgresUID)
	return b.image(spec{
		name: "cnpg-postgresql", repository: "kommons/cnpg-postgresql", tag: keyTag(major),
		base: base,
		// No entrypoint: CloudNativePG runs its instance manager
		// (/controller/manager instance run) in this image.
		config: v1.Config{
			Env:        []string{"PATH=" + cnpgPostgresBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "PG_MAJOR=" + major},
			User:       uid + ":" + uid,
			WorkingDir: "/",
			StopSignal: "SIGINT",
			ExposedPorts: map[string]struct{}{
				"5432/tcp": {},
			},
		},
	})
}

// verifyCNPGRoot checks what CloudNativePG requires of an operand image
// (docs/src/container_images.md of the operator: initdb, postgres, pg_ctl,
// pg_controldata, pg_basebackup in PATH, a locale) and the barman-cloud
// tools of its in-tree backups.
func verifyCNPGRoot(rootfs string) (string, error) {
	var need []string
	for _, bin := range []string{"initdb", "postgres", "pg_ctl", "pg_controldata", "pg_basebackup", "psql"} {
		need = append(need, cnpgPostgresBin+"/"+bin)
	}
	need = append(need, "/usr/bin/barman-cloud-backup", "/usr/bin/barman-cloud-wal-archive", "/usr/bin/barman-cloud-restore",
		"/usr/bin/barman-cloud-wal-restore", "/usr/bin/du", "/usr/lib/locale/C.utf8", "/etc/ssl/certs/ca-certificates.crt")
	for _, p := range need {
		if _, err := os.Stat(filepath.Join(rootfs, p)); err != nil {
			return "", fmt.Errorf("debian trixie root filesystem lacks %s: %w", p, err)
		}
	}
	status, err := dpkgVersions(filepath.Join(rootfs, "var/lib/dpkg/status"))
	if err != nil {
		return "", err
	}
	pg := "postgresql-" + strconv.Itoa(CNPGPostgresMajor)
	var got []string
	for _, pkg := range []string{pg, "barman-cli-cloud", "python3-boto3"} {
		v, ok := status[pkg]
		if !ok {
			return "", fmt.Errorf("debian trixie root filesystem: package %s is not installed", pkg)
		}
		got = append(got, pkg+" "+v)
	}
	if !strings.HasPrefix(status[pg], strconv.Itoa(CNPGPostgresMajor)+".") {
		return "", fmt.Errorf("debian trixie root filesystem: %s %s, want %d.*", pg, status[pg], CNPGPostgresMajor)
	}
	return strings.Join(got, ", "), nil
}

// customizeCNPGRoot makes the trixie root filesystem an operand image:
// the postgres user and group become CNPGPostgresUID (26; Debian's tape
// group, which has that gid and owns nothing in the image, goes), then as
// customizeDebian: the install-time cluster goes, host details are reset.
func customizeCNPGRoot(rootfs string) error {
	if err := dropGroupWithID(rootfs, CNPGPostgresUID, "tape"); err != nil {
		return err
	}
	return preparePostgresRoot(rootfs, CNPGPostgresUID, CNPGPostgresMajor)
}

// dropGroupWithID removes the group named name from etc/group and
// etc/gshadow if it has gid id, freeing the id; any other holder of the id
// is left, for rewriteIDs to refuse.
func dropGroupWithID(rootfs string, id int, name string) error {
	group, err := os.ReadFile(filepath.Join(rootfs, "etc/group"))
	if err != nil {
		return err
	}
	if !strings.Contains("\n"+string(group), "\n"+name+":x:"+strconv.Itoa(id)+":") {
		return nil
	}
	for _, f := range []string{"etc/group", "etc/gshadow"} {
		p := filepath.Join(rootfs, f)
		info, err := os.Stat(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var kept []string
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, name+":") {
				kept = append(kept, line)
			}
		}
		if err := os.WriteFile(p, []byte(strings.Join(kept, "\n")), info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}
