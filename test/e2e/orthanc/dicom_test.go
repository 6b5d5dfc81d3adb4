package orthanc_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kommons/kommons/internal/testutil/orthanctest"
	"github.com/kommons/kommons/internal/testutil/pgtest"
	"github.com/kommons/kommons/test/e2e/orthanc"
)

// writeDicomFiles writes the generated instances of specs under dir and returns their paths.
func writeDicomFiles(t *testing.T, dir string, specs []orthanctest.DicomSpec) []string {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	var paths []string
	for _, s := range specs {
		p := filepath.Join(dir, fmt.Sprintf("s%d-i%d.dcm", s.Study, s.Instance))
		require.NoError(t, os.WriteFile(p, orthanctest.DicomFile(s), 0o600))
		paths = append(paths, p)
	}
	return paths
}

// instanceUIDs lists the SOP Instance UIDs an Orthanc holds, sorted.
func instanceUIDs(t *testing.T, in *orthanctest.Instance) []string {
	t.Helper()
	var found []struct{ MainDicomTags map[string]string }
	code, body, err := in.Do(http.MethodPost, "/tools/find", "application/json", []byte(`{"Level":"Instance","Query":{},"Expand":true}`))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, jsonUnmarshal(body, &found))
	var out []string
	for _, f := range found {
		out = append(out, f.MainDicomTags["SOPInstanceUID"])
	}
	sort.Strings(out)
	return out
}

// dicomAddr is the host and DICOM port arguments of a DCMTK tool.
func dicomAddr(in *orthanctest.Instance) []string {
	return []string{"127.0.0.1", strconv.Itoa(in.DicomPort)}
}

// TestDicomOverTheWire: DCMTK's SCUs against two replicas started from the
// chart's rendered configuration (DICOM server on both: no jobs instance):
// C-ECHO with the chart's AE title, C-STORE of 20 instances to one replica
// read back from the other over REST, C-FIND (study level) of the stored
// studies on the other replica, and a wrong called AE title refused because
// orthanc.dicomCheckCalledAet is set (and accepted with the default, off).
func TestDicomOverTheWire(t *testing.T) {
	orthanctest.Require(t)
	orthanctest.RequireDcmtk(t)
	pg := pgtest.Shared(t)
	s := orthanc.Provision(t, pg, "e2e-dimse", map[string]any{
		"storage":      map[string]any{"type": "filesystem"},
		"replicaCount": 2,
		"orthanc": map[string]any{
			"dicomCheckCalledAet": true,
			// The querying modality: C-FIND is allowed to declared modalities only (DicomAlwaysAllowFind false).
			"config": map[string]any{"DicomModalities": map[string]any{"findscu": []any{"FINDSCU", "127.0.0.1", 104}}},
		},
	})
	cfg := s.OrthancConfig(t, "web")
	aet := fmt.Sprint(cfg["DicomAet"])
	require.Equal(t, "ORTHANC", aet, "the chart's default orthanc.dicomAet")
	require.Equal(t, true, cfg["DicomServerEnabled"])
	require.Equal(t, true, cfg["DicomCheckCalledAet"])

	storageDir := filepath.Join(t.TempDir(), "storage")
	a := s.StartReplica(t, "web", orthanc.Fullname+"-dimse-aaaaa", storageDir)
	b := s.StartReplica(t, "web", orthanc.Fullname+"-dimse-bbbbb", storageDir)

	for _, in := range []*orthanctest.Instance{a, b} {
		r := orthanctest.Dcmtk(t, "echoscu", append([]string{"-aet", "KOMMONS", "-aec", aet}, dicomAddr(in)...)...)
		assert.True(t, r.OK(), "C-ECHO with the chart's AE title to %s: %s", in.Name, r)
	}

	// A wrong called AE title: the association is rejected (DicomCheckCalledAet).
	r := orthanctest.Dcmtk(t, "echoscu", append([]string{"-aet", "KOMMONS", "-aec", "NOT-ORTHANC"}, dicomAddr(a)...)...)
	assert.False(t, r.OK(), "a wrong called AE title was accepted: %s", r)
	assert.Contains(t, r.Output, "Called AE Title Not Recognized", r.String())

	// C-STORE of 2 studies x 10 instances to replica a, in one association.
	const studies, perStudy = 2, 10
	var specs []orthanctest.DicomSpec
	for st := 1; st <= studies; st++ {
		for i := 1; i <= perStudy; i++ {
			specs = append(specs, orthanctest.DicomSpec{Run: "dimse", Study: st, Instance: i})
		}
	}
	files := writeDicomFiles(t, filepath.Join(t.TempDir(), "dicom"), specs)
	r = orthanctest.Dcmtk(t, "storescu", append(append([]string{"-aet", "KOMMONS", "-aec", aet}, dicomAddr(a)...), files...)...)
	require.True(t, r.OK(), "C-STORE: %s", r)

	// Every instance is visible from replica b (shared index, shared volume), byte-identical pixels.
	var want []string
	for _, sp := range specs {
		want = append(want, sp.SOPInstanceUID())
	}
	sort.Strings(want)
	assert.Equal(t, want, instanceUIDs(t, b), "the instances stored through replica a, listed by replica b")
	st, err := b.Stats()
	require.NoError(t, err)
	assert.Equal(t, orthanctest.Statistics{CountPatients: studies, CountStudies: studies, CountSeries: studies, CountInstances: studies * perStudy}, st)
	for _, sp := range specs[:3] {
		var ids []struct{ ID string }
		code, body, err := b.Do(http.MethodPost, "/tools/lookup", "text/plain", []byte(sp.SOPInstanceUID()))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		require.NoError(t, jsonUnmarshal(body, &ids))
		require.Len(t, ids, 1)
		code, pixels, err := b.Do(http.MethodGet, "/instances/"+ids[0].ID+"/frames/0/raw", "", nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, code)
		assert.Equal(t, pixelData(t, orthanctest.DicomFile(sp)), pixels, "pixel data of %s read from replica b", sp.SOPInstanceUID())
	}

	// C-FIND at study level on replica b returns the studies stored through a.
	r = orthanctest.Dcmtk(t, "findscu", append([]string{"-S", "-aet", "FINDSCU", "-aec", aet,
		"-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID", "-k", "StudyDate"}, dicomAddr(b)...)...)
	require.True(t, r.OK(), "C-FIND: %s", r)
	found := orthanctest.DumpValues(r.Output, "0020,000d")
	sort.Strings(found)
	var wantStudies []string
	for st := 1; st <= studies; st++ {
		wantStudies = append(wantStudies, orthanctest.UID("dimse", "study", st))
	}
	sort.Strings(wantStudies)
	assert.Equal(t, wantStudies, found, "C-FIND study-level answers:\n%s", r.Output)

	// A modality the configuration does not declare may not C-FIND.
	r = orthanctest.Dcmtk(t, "findscu", append([]string{"-S", "-aet", "STRANGER", "-aec", aet, "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID"}, dicomAddr(b)...)...)
	assert.Empty(t, orthanctest.DumpValues(r.Output, "0020,000d"), "an undeclared modality got C-FIND answers: %s", r)

	t.Run("called AE title not checked by default", func(t *testing.T) {
		d := orthanc.Provision(t, pg, "e2e-dimse-default", map[string]any{"storage": map[string]any{"type": "filesystem"}, "replicaCount": 1})
		assert.Equal(t, false, d.OrthancConfig(t, "web")["DicomCheckCalledAet"])
		in := d.StartReplica(t, "web", orthanc.Fullname+"-dimse-default", filepath.Join(t.TempDir(), "storage"))
		r := orthanctest.Dcmtk(t, "echoscu", append([]string{"-aet", "KOMMONS", "-aec", "NOT-ORTHANC"}, dicomAddr(in)...)...)
		assert.True(t, r.OK(), "with dicomCheckCalledAet false any called AE title is accepted: %s", r)
	})
}

func jsonUnmarshal(data []byte, into any) error { return json.Unmarshal(data, into) }

// pixelData returns the value of (7FE0,0010) OB in a generated file (the last element).
func pixelData(t *testing.T, file []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(file, []byte{0xe0, 0x7f, 0x10, 0x00, 'O', 'B', 0, 0})
	require.GreaterOrEqual(t, i, 0, "no (7FE0,0010) OB element")
	n := int(binary.LittleEndian.Uint32(file[i+8:]))
	return file[i+12 : i+12+n]
}
