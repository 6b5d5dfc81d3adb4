package testcluster

import "github.com/kommons/kommons/internal/testutil/nodeimages"

// ImageValues are the Helm flags pointing a chart's image value (prefix,
// e.g. "tools.image") at img in the node's registry.
func ImageValues(prefix string, img nodeimages.Image) []string {
	return []string{"--set", prefix + ".registry=" + nodeimages.Registry, "--set", prefix + ".repository=" + img.Repository,
		"--set", prefix + ".tag=" + img.Tag}
}

// TenantSecret is the Secret charts/commons writes into each tenant
// namespace (release "commons"): the tenant's provisioner and the
// connection facts, under libpq's names.
const TenantSecret = "kommons-commons"

// ProvisionerValues point a postgres-init dependency (under prefix, e.g.
// "postgresInit") at commons' tenant Secret and the node's tools image.
func ProvisionerValues(prefix string, tools nodeimages.Image) []string {
	v := ImageValues(prefix+".image", tools)
	for _, k := range []struct{ key, env string }{
		{"host", "PGHOST"}, {"port", "PGPORT"}, {"sslmode", "PGSSLMODE"}, {"username", "PGUSER"}, {"password", "PGPASSWORD"},
	} {
		v = append(v, "--set", prefix+".provisioner.keys."+k.key+"="+k.env)
	}
	return append(v, "--set", prefix+".provisioner.secretName="+TenantSecret)
}

// OrthancValues run charts/orthanc on the node's Orthanc image (Debian's
// Orthanc and PostgreSQL plugins: their executable and plugin directory
// differ from the chart's default upstream image).
func OrthancValues(img nodeimages.Image) []string {
	v := []string{"--set", "orthanc.command=" + nodeimages.OrthancCommand, "--set", "orthanc.plugins.directory=" + nodeimages.OrthancPluginDir}
	return append(v, ImageValues("image", img)...)
}
