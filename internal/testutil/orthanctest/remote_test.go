package orthanctest_test

import (
	"encoding/json"
	"fmt"
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

// TestGetJSONURLAndUploadTo: the one-request forms take a whole URL (the
// path after host:port) and a base; an error names the status, a relative
// URL is refused, an upload Orthanc does not store fails the test.
func TestGetJSONURLAndUploadTo(t *testing.T) {
	status := "Success"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/instances":
			_ = json.NewEncoder(w).Encode(map[string]string{"ID": "id-1", "Status": status})
		case r.URL.Path == "/jobs/42" && r.URL.RawQuery == "full":
			_ = json.NewEncoder(w).Encode(map[string]string{"State": "Success"})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()

	var job struct{ State string }
	require.NoError(t, orthanctest.GetJSONURL(srv.URL+"/jobs/42?full", "admin", "secret", &job))
	assert.Equal(t, "Success", job.State)
	assert.ErrorContains(t, orthanctest.GetJSONURL(srv.URL+"/jobs/43", "admin", "secret", &job), "HTTP 404")
	assert.ErrorContains(t, orthanctest.GetJSONURL(srv.URL+"/jobs/42?full", "admin", "wrong", &job), "HTTP 401")
	assert.ErrorContains(t, orthanctest.GetJSONURL("/jobs/42", "admin", "secret", &job), "not an absolute URL")

	assert.Equal(t, "id-1", orthanctest.UploadTo(t, srv.URL, "admin", "secret", []byte("dcm")))
	status = "AlreadyStored"
	ft := &fatalT{TB: t}
	func() {
		defer func() { _ = recover() }()
		orthanctest.UploadTo(ft, srv.URL, "admin", "secret", []byte("dcm"))
	}()
	assert.Contains(t, ft.msg, `status "AlreadyStored", want Success`)
}

// fatalT records a Fatalf and stops the call (as t.Fatalf would) by panicking.
type fatalT struct {
	testing.TB
	msg string
}

func (f *fatalT) Helper() {}

func (f *fatalT) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f.msg)
}
