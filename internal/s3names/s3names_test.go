package s3names

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPhysicalTable(t *testing.T) {
	long := strings.Repeat("a", 80)
	cases := []struct {
		ns, rel, logical, want string
	}{
		{"imaging", "orthanc", "orthanc", "imaging-orthanc-orthanc"},
		{"imaging", "orthanc", "dicom-store", "imaging-orthanc-dicom-store"},
		// Hyphens in the scope would make the split ambiguous: hashed.
		{"team-a", "x", "data", "team-a-x-data--" + Hash("team-a", "x", "data")},
		{"team", "a-x", "data", "team-a-x-data--" + Hash("team", "a-x", "data")},
		{"imaging", "orthanc", "Orthanc", "imaging-orthanc-orthanc--" + Hash("imaging", "orthanc", "Orthanc")},
		{"imaging", "orthanc", "a_b", "imaging-orthanc-a-b--" + Hash("imaging", "orthanc", "a_b")},
		{"imaging", "orthanc", "a--b", "imaging-orthanc-a-b--" + Hash("imaging", "orthanc", "a--b")},
		{"imaging", "orthanc", "-x-", "imaging-orthanc-x--" + Hash("imaging", "orthanc", "-x-")},
		{"imaging", "orthanc", "../../etc", "imaging-orthanc-etc--" + Hash("imaging", "orthanc", "../../etc")},
		{"imaging", "orthanc", "x-s3alias", "imaging-orthanc-x-s3alias--" + Hash("imaging", "orthanc", "x-s3alias")},
		{"sthree", "r", "b", "k-sthree-r-b--" + Hash("sthree", "r", "b")},
		{"amzn", "s3", "demo-b", "k-amzn-s3-demo-b--" + Hash("amzn", "s3", "demo-b")}, // reserved prefix
		{"imaging", "orthanc", long, ("imaging-orthanc-" + long)[:baseLen] + "--" + Hash("imaging", "orthanc", long)},
		{"é", "ü", "日本", "k--" + Hash("é", "ü", "日本")},
	}
	for _, c := range cases {
		got, err := Physical(c.ns, c.rel, c.logical)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%q/%q/%q", c.ns, c.rel, c.logical)
		require.NoError(t, ValidBucketName(got))
	}
}

func TestPhysicalEmpty(t *testing.T) {
	for _, in := range [][3]string{{"", "r", "l"}, {"n", "", "l"}, {"n", "r", ""}} {
		_, err := Physical(in[0], in[1], in[2])
		require.ErrorIs(t, err, ErrEmpty)
	}
}

// TestPhysicalProperties feeds random (often hostile) inputs: every result
// is a valid bucket name, deterministic, and distinct inputs never share a
// name (the hash is 32 bits: no collision is expected among 5000 names).
func TestPhysicalProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("abcz09-_.A/ é\u200b..--")
	word := func() string {
		n := 1 + r.IntN(40)
		if r.IntN(10) == 0 {
			n = 60 + r.IntN(100)
		}
		b := make([]rune, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	seen := map[string]string{}
	for i := 0; i < 5000; i++ {
		ns, rel, l := word(), word(), word()
		if i%3 == 0 {
			ns, rel = "imaging", "orthanc"
		}
		got, err := Physical(ns, rel, l)
		require.NoError(t, err)
		require.NoError(t, ValidBucketName(got), "%q/%q/%q", ns, rel, l)
		again, _ := Physical(ns, rel, l)
		require.Equal(t, got, again)
		key := fmt.Sprintf("%q/%q/%q", ns, rel, l)
		if prev, ok := seen[got]; ok && prev != key {
			t.Fatalf("collision: %s and %s both give %s", prev, key, got)
		}
		seen[got] = key
		require.Equal(t, IsPlain(ns, rel, l), !strings.Contains(got, "--"), key)
	}
}

func TestValidBucketName(t *testing.T) {
	for _, bad := range []string{"ab", strings.Repeat("a", 64), "-abc", "abc-", "a..b", "192.168.1.1", "Abc", "a_b", "xn--abc", "abc-s3alias", "abc--x-s3"} {
		require.Error(t, ValidBucketName(bad), bad)
	}
	for _, good := range []string{"abc", "a.b.c", "imaging-orthanc-orthanc", strings.Repeat("a", 63)} {
		require.NoError(t, ValidBucketName(good), good)
	}
}
