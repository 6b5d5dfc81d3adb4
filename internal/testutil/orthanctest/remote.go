package orthanctest

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// Remote is an Orthanc the test did not start, e.g. pods behind a
// Kubernetes Service: its REST API at url (http://host:port) with the given
// account, each request on a new connection (so that a Service spreads
// them over its pods) and given up after timeout. Do, GetJSON, Upload,
// UploadRetrying and Stats work on it; it has no process (Running reports
// false, Stop does nothing, PID must not be called) and no logs here.
func Remote(url, user, password string, timeout time.Duration) *Instance {
	exited := make(chan struct{})
	close(exited)
	return &Instance{
		URL: url, Name: url, user: user, password: password, exited: exited,
		client: &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}},
	}
}

// GetJSONURL GETs rawURL (http://host:port/path) as user, given up after 30
// seconds, and decodes a 200 answer into into: a Remote's GetJSON for one
// request.
func GetJSONURL(rawURL, user, password string, into any) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("GET %q: not an absolute URL (%v)", rawURL, err)
	}
	base := u.Scheme + "://" + u.Host
	_, err = Remote(base, user, password, 30*time.Second).GetJSON(rawURL[len(base):], into)
	return err
}

// UploadTo POSTs one DICOM file to the Orthanc at base (http://host:port) as
// user and returns the instance's Orthanc ID; the test fails unless Orthanc
// stores it (status Success).
func UploadTo(t testing.TB, base, user, password string, dicom []byte) string {
	t.Helper()
	r, err := Remote(base, user, password, time.Minute).Upload(dicom)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if r.Status != "Success" {
		t.Fatalf("upload to %s: status %q, want Success", base, r.Status)
	}
	return r.ID
}
