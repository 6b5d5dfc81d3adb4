package orthanctest

import (
	"net/http"
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
