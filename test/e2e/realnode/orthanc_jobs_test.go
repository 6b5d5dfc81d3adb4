package realnode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/testcluster"
)

// tlsSecretName is the DICOM TLS Secret the test makes (as cert-manager would).
const tlsSecretName = "pacs-dicom-tls"

// dicomTLS is the CA and certificates of the DICOM TLS steps.
type dicomTLS struct {
	ca     *orthanctest.CA
	serial *big.Int // of the server certificate in the Secret
	cert   []byte   // client certificate and key, PEM
	key    []byte
}

// jobsInstanceRouting upgrades Orthanc to the distinguished jobs instance
// (and DICOM TLS, used by the next step: one rollout for both) and
// exercises the route the chart offers to it, the `<fullname>-jobs`
// Service: an asynchronous study modification started through it runs to
// Success on /jobs through it, while each of the two web replicas, asked
// directly by pod IP, reports no job at all and does not know the job;
// the modalities of jobsInstance.config are listed only through it (and
// the jobs instance C-ECHOes one of them, itself over DICOM TLS); the
// modified study is indexed, so both web replicas list it.
func (s *scenario) jobsInstanceRouting(t *testing.T) {
	ctx := context.Background()
	s.tls = s.makeDicomTLSSecret(t)
	self := fmt.Sprintf(`{"DicomModalities": {"self": {"AET": "ORTHANC", "Host": "pacs-orthanc-dicom.%s.svc.cluster.local", "Port": 4242, "UseDicomTls": true}}}`, s.imaging)
	values := append(append([]string{}, s.orthanc...),
		"--set", "jobsInstance.enabled=true", "--set-json", "jobsInstance.config="+self,
		"--set-json", `jobsInstance.resources={"requests": {"cpu": "50m", "memory": "128Mi", "ephemeral-storage": "64Mi"}, "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}}`,
		"--set", "dicomTls.enabled=true", "--set", "dicomTls.existingSecret="+tlsSecretName, "--set", "dicomTls.remoteCertificateRequired=true")
	s.helm(t, append([]string{"upgrade", "pacs", filepath.Join(s.charts, "charts", "orthanc"), "-n", s.imaging,
		"--wait", "--wait-for-jobs", "--timeout", "10m"}, values...)...)
	s.requirePodsReady(t, s.imaging)
	web := s.orthancPods(t)
	require.Len(t, web, 2, "two web replicas")
	jobsPod := s.onePod(t, s.imaging, "app.kubernetes.io/name=orthanc,app.kubernetes.io/component=jobs")
	user, pw := s.orthancAuth(t)

	// The -jobs Service routes to the jobs pod, and to it only.
	testcluster.Eventually(t, "the -jobs Service's endpoints are the jobs pod", time.Minute, func() error {
		eps, err := s.c.Client().DiscoveryV1().EndpointSlices(s.imaging).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=pacs-orthanc-jobs"})
		if err != nil {
			return err
		}
		var addrs []string
		for _, sl := range eps.Items {
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
					addrs = append(addrs, ep.Addresses...)
				}
			}
		}
		if len(addrs) != 1 || addrs[0] != jobsPod.Status.PodIP {
			return fmt.Errorf("endpoints %v, want [%s]", addrs, jobsPod.Status.PodIP)
		}
		return nil
	})
	jobs := "http://" + s.c.ServiceAddr(t, s.imaging, "pacs-orthanc-jobs", "http")
	webURL := func(p corev1.Pod) string { return "http://" + net.JoinHostPort(p.Status.PodIP, "8042") }

	// An asynchronous job started through the route: modify study 7 (the C-STOREd one).
	var found []struct{ ID, Type string }
	s.postJSON(t, jobs+"/tools/lookup", user, pw, orthanctest.UID(s.run, "study", 7), http.StatusOK, &found)
	require.Len(t, found, 1, "study 7 looked up through the -jobs Service")
	var started struct{ ID, Path string }
	s.postJSON(t, jobs+"/studies/"+found[0].ID+"/modify", user, pw,
		`{"Replace": {"StudyDescription": "modified through the jobs route"}, "Asynchronous": true}`, http.StatusOK, &started)
	require.NotEmpty(t, started.ID, "an asynchronous modification answers a job ID")
	var job struct {
		State   string
		Type    string
		Content map[string]any
	}
	testcluster.Eventually(t, "job "+started.ID+" Success through the -jobs Service", 3*time.Minute, func() error {
		if err := orthanctest.GetJSONURL(jobs+"/jobs/"+started.ID, user, pw, &job); err != nil {
			return err
		}
		if job.State == "Failure" {
			t.Fatalf("job %s failed: %+v", started.ID, job)
		}
		if job.State != "Success" {
			return fmt.Errorf("state %s", job.State)
		}
		return nil
	})
	var listed []string
	require.NoError(t, orthanctest.GetJSONURL(jobs+"/jobs", user, pw, &listed))
	assert.Contains(t, listed, started.ID, "GET /jobs through the -jobs Service lists the job")
	t.Logf("job %s (%s) started and followed through the -jobs Service: %s", started.ID, job.Type, job.State)
	for _, p := range web {
		var none []string
		require.NoError(t, orthanctest.GetJSONURL(webURL(p)+"/jobs", user, pw, &none), "web replica %s", p.Name)
		assert.Empty(t, none, "web replica %s reports jobs", p.Name)
		assert.Equal(t, http.StatusNotFound, s.status(t, http.MethodGet, webURL(p)+"/jobs/"+started.ID, user, pw, ""),
			"web replica %s knows the jobs instance's job", p.Name)
	}
	// The modified copy is in the shared index: both web replicas list it.
	newStudy, _ := job.Content["ID"].(string)
	require.NotEmpty(t, newStudy, "the job's result names the modified study: %+v", job.Content)
	for _, p := range web {
		var st struct{ MainDicomTags map[string]string }
		require.NoError(t, orthanctest.GetJSONURL(webURL(p)+"/studies/"+newStudy, user, pw, &st), "web replica %s", p.Name)
		assert.Equal(t, "modified through the jobs route", st.MainDicomTags["StudyDescription"], "replica %s", p.Name)
	}
	s.uploaded += 6 // study 7's instances, copied by the modification
	s.requireCounts(t)

	// Modalities: jobsInstance.config's are the jobs instance's only.
	var modalities []string
	require.NoError(t, orthanctest.GetJSONURL(jobs+"/modalities", user, pw, &modalities))
	sort.Strings(modalities)
	assert.Equal(t, []string{"findscu", "self"}, modalities, "/modalities through the -jobs Service: orthanc.config's and jobsInstance.config's")
	for _, p := range web {
		var m []string
		require.NoError(t, orthanctest.GetJSONURL(webURL(p)+"/modalities", user, pw, &m))
		assert.Equal(t, []string{"findscu"}, m, "web replica %s: orthanc.config's modalities only", p.Name)
		assert.NotEqual(t, http.StatusOK, s.status(t, http.MethodPost, webURL(p)+"/modalities/self/echo", user, pw, "{}"),
			"web replica %s echoed a modality of jobsInstance.config", p.Name)
		// The web replicas serve no DICOM: the jobs instance owns it.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(p.Status.PodIP, "4242"), 5*time.Second); err == nil {
			c.Close()
			t.Errorf("web replica %s accepts connections on the DICOM port", p.Name)
		}
	}
	// The jobs instance, as a DICOM TLS SCU with the Secret's certificate,
	// echoes itself through the -dicom Service.
	assert.Equal(t, http.StatusOK, s.status(t, http.MethodPost, jobs+"/modalities/self/echo", user, pw, "{}"),
		"C-ECHO from the jobs instance to modality self (DICOM TLS, through the -dicom Service)")
}

// makeDicomTLSSecret makes a CA, a server certificate in the Secret the
// chart mounts (tls.crt, tls.key, ca.crt: cert-manager's layout) and a
// client certificate for DCMTK.
func (s *scenario) makeDicomTLSSecret(t *testing.T) *dicomTLS {
	t.Helper()
	ca := orthanctest.NewCA(t, "kommons real-node CA")
	serverCert, serverKey, serial := ca.Issue(t, "pacs-orthanc-dicom")
	clientCert, clientKey, _ := ca.Issue(t, "modality")
	_, err := s.c.Client().CoreV1().Secrets(s.imaging).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: tlsSecretName},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"tls.crt": serverCert, "tls.key": serverKey, "ca.crt": ca.PEM},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return &dicomTLS{ca: ca, serial: serial, cert: clientCert, key: clientKey}
}

// dicomTLSPods: DCMTK against the jobs instance's DICOM TLS port through
// the chart's -dicom Service (dicomTls.enabled, remoteCertificateRequired):
// a TLS C-ECHO with a certificate from the Secret's CA succeeds, a plain
// association and a TLS client without a certificate are refused. Then
// renewal as the chart README documents it: the Secret's certificate
// replaced, the kubelet updates the mounted file but the running Orthanc
// keeps serving the old certificate; `kubectl rollout restart` of the
// Deployment serving DICOM makes it serve the new one.
func (s *scenario) dicomTLSPods(t *testing.T) {
	orthanctest.RequireDcmtk(t)
	require.NotNil(t, s.tls, "the previous step made the DICOM TLS Secret")
	ctx := context.Background()
	addr := s.c.ServiceAddr(t, s.imaging, "pacs-orthanc-dicom", "dicom")
	host, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	echo := func(tlsArgs ...string) orthanctest.DcmtkResult {
		args := append(append([]string{"-aet", "MODALITY", "-aec", "ORTHANC", "-to", "20", "-ta", "20"}, tlsArgs...), host, port)
		return orthanctest.Dcmtk(t, "echoscu", args...)
	}
	dir := t.TempDir()
	files := map[string]string{}
	for name, content := range map[string][]byte{"ca.crt": s.tls.ca.PEM, "client.crt": s.tls.cert, "client.key": s.tls.key} {
		files[name] = filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(files[name], content, 0o600))
	}
	withCert := []string{"+tls", files["client.key"], files["client.crt"], "+cf", files["ca.crt"]}

	r := echo(withCert...)
	require.True(t, r.OK(), "TLS C-ECHO through the -dicom Service with a certificate from the trusted CA: %s", r)
	r = echo()
	assert.False(t, r.OK(), "a plain association to the TLS port was accepted: %s", r)
	r = echo("+tla", "+cf", files["ca.crt"])
	assert.False(t, r.OK(), "a TLS client without a certificate was accepted (remoteCertificateRequired): %s", r)
	require.Equal(t, s.tls.serial, orthanctest.ServedSerial(t, addr, s.tls.cert, s.tls.key), "the Secret's certificate is served")

	// Renewal: a new certificate in the same Secret.
	renewedCert, renewedKey, renewedSerial := s.tls.ca.Issue(t, "pacs-orthanc-dicom")
	sec, err := s.c.Client().CoreV1().Secrets(s.imaging).Get(ctx, tlsSecretName, metav1.GetOptions{})
	require.NoError(t, err)
	sec.Data["tls.crt"], sec.Data["tls.key"] = renewedCert, renewedKey
	_, err = s.c.Client().CoreV1().Secrets(s.imaging).Update(ctx, sec, metav1.UpdateOptions{})
	require.NoError(t, err)
	jobsPod := s.onePod(t, s.imaging, "app.kubernetes.io/name=orthanc,app.kubernetes.io/component=jobs")
	// A pod update makes the kubelet sync the pod's volumes now rather than at its next periodic sync.
	s.c.Kubectl(t, "annotate", "pod", "-n", s.imaging, jobsPod.Name, "kommons.test/secret-renewed="+s.run, "--overwrite")
	start := time.Now()
	testcluster.Eventually(t, "the kubelet updates the mounted tls.crt", 3*time.Minute, func() error {
		out, err := s.c.Exec(filepath.Join(s.c.Tools.KubeBin, "kubectl"), "exec", "-n", s.imaging, jobsPod.Name, "-c", "orthanc", "--",
			"python3", "-c", "import sys; sys.stdout.write(open('/etc/orthanc-secrets/dicom-tls/tls.crt').read())")
		if err != nil {
			return fmt.Errorf("kubectl exec: %v: %s", err, out)
		}
		if !strings.Contains(out, strings.TrimSpace(string(renewedCert))) {
			return fmt.Errorf("still the old certificate")
		}
		return nil
	})
	t.Logf("renewed certificate mounted in %s after %.1fs", jobsPod.Name, time.Since(start).Seconds())
	assert.Equal(t, s.tls.serial, orthanctest.ServedSerial(t, addr, s.tls.cert, s.tls.key),
		"the running Orthanc keeps serving the certificate it read at start")

	// The README's renewal step: restart the Deployment that serves DICOM (the jobs instance here).
	s.c.Kubectl(t, "rollout", "restart", "deployment/pacs-orthanc-jobs", "-n", s.imaging)
	s.c.Kubectl(t, "rollout", "status", "deployment/pacs-orthanc-jobs", "-n", s.imaging, "--timeout", "5m")
	testcluster.Eventually(t, "the renewed certificate served through the -dicom Service", 2*time.Minute, func() error {
		got, err := orthanctest.TryServedSerial(addr, s.tls.cert, s.tls.key)
		if err != nil {
			return err
		}
		if got.Cmp(renewedSerial) != 0 {
			return fmt.Errorf("serving serial %v, want %v", got, renewedSerial)
		}
		return nil
	})
	r = echo(withCert...)
	assert.True(t, r.OK(), "TLS C-ECHO after the renewal: %s", r)
	s.tls.serial = renewedSerial
}

// status sends a request and returns its HTTP status.
func (s *scenario) status(t *testing.T, method, url, user, password, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.SetBasicAuth(user, password)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// postJSON POSTs body and decodes the answer, which must have status want.
func (s *scenario) postJSON(t *testing.T, url, user, password, body string, want int, into any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	req.SetBasicAuth(user, password)
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	require.NoError(t, err, "POST %s", url)
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	require.Equal(t, want, resp.StatusCode, "POST %s: %s", url, got)
	require.NoError(t, json.Unmarshal(got, into), "POST %s: %s", url, got)
}
