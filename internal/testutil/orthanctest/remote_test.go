package orthanctest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
)

// TestRemote: a Remote sends the account on every request, each on a new
// connection (a Service would spread them), and has no process.
func TestRemote(t *testing.T) {
	var remotes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remotes = append(remotes, r.RemoteAddr)
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/instances":
			body, _ := io.ReadAll(r.Body)
			require.Equal(t, "application/dicom", r.Header.Get("Content-Type"))
			_ = json.NewEncoder(w).Encode(map[string]string{"ID": "id-" + string(body), "Status": "Success", "Path": "/instances/x"})
		case r.URL.Path == "/statistics":
			_ = json.NewEncoder(w).Encode(map[string]int{"CountInstances": 3})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()

	in := orthanctest.Remote(srv.URL, "admin", "secret", 10*time.Second)
	r, err := in.Upload([]byte("dcm"))
	require.NoError(t, err)
	assert.Equal(t, orthanctest.UploadResult{ID: "id-dcm", Status: "Success", Path: "/instances/x"}, r)
	st, err := in.Stats()
	require.NoError(t, err)
	assert.Equal(t, 3, st.CountInstances)
	var none struct{}
	code, err := in.GetJSON("/instances/unknown", &none)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Error(t, err)
	require.Len(t, remotes, 3)
	assert.NotEqual(t, remotes[0], remotes[1], "a new connection per request")
	assert.False(t, in.Running(), "no process")
	in.Stop() // nothing to stop

	bad := orthanctest.Remote(srv.URL, "admin", "wrong", 10*time.Second)
	_, err = bad.Upload([]byte("dcm"))
	require.ErrorContains(t, err, "HTTP 401")
}
