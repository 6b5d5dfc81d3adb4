package pgready

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParsePrivilege(t *testing.T) {
	p, err := ParsePrivilege("select, insert on TABLE app.orders")
	require.Error(t, err, "spaces inside the privilege list split the words")
	p, err = ParsePrivilege("select,insert on TABLE app.orders")
	require.NoError(t, err)
	require.Equal(t, Privilege{Privileges: []string{"SELECT", "INSERT"}, Kind: "TABLE", Object: "app.orders"}, p)
	require.Equal(t, "SELECT,INSERT ON TABLE app.orders", p.String())
	p, err = ParsePrivilege("TEMP ON DATABASE")
	require.NoError(t, err)
	require.Equal(t, "", p.Object)
	for in, want := range map[string]string{
		"CREATE ON TABLE t":   "CREATE is not a TABLE privilege",
		"SELECT ON VIEW v":    "kind VIEW",
		"USAGE ON SCHEMA":     "SCHEMA needs a name",
		"SELECT TABLE t":      "not of the form",
		"SELECT ON TABLE a b": "too many words",
	} {
		_, err := ParsePrivilege(in)
		require.ErrorContains(t, err, want, in)
		require.ErrorContains(t, err, in, "the error quotes the input")
	}
}
