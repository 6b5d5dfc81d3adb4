package orthanctest

import (
	"bytes"
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math/big"
)

// Secondary Capture Image Storage and Explicit VR Little Endian.
const (
	sopClassSecondaryCapture = "1.2.840.10008.5.1.4.1.1.7"
	transferSyntaxExplicitLE = "1.2.840.10008.1.2.1"
	implementationClassUID   = "2.25.1"
)

// DicomSpec describes one generated DICOM instance. Equal specs give
// byte-identical files; UIDs derive from Run and the numbers only.
type DicomSpec struct {
	// Run namespaces every UID and the patient identity (one test, one run).
	Run string
	// Study numbers the patient and its single study and series (1-based).
	Study int
	// Instance numbers the instance inside the series (1-based).
	Instance int
	// Size is the side of the square 8-bit image (default 8: 64 bytes of pixels).
	Size int
	// StudyDate is the StudyDate (YYYYMMDD) of the study (default 20260101).
	StudyDate string
}

// UID returns the deterministic UID "2.25.<decimal of a name-based UUID>"
// for kind ("study", "series", "sop") and n within run (RFC 4122 version 5
// UUID in the OID namespace, the form DICOM PS3.5 B.2 allows under 2.25).
func UID(run, kind string, n int) string {
	ns := [16]byte{0x6b, 0xa7, 0xb8, 0x12, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8} // NameSpace_OID
	h := sha1.New()
	h.Write(ns[:])
	fmt.Fprintf(h, "%s/%s/%d", run, kind, n)
	u := h.Sum(nil)[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(u).String()
}

// PatientID is the PatientID of the generated study n of run.
func PatientID(run string, study int) string { return fmt.Sprintf("KOMMONS-%s-%d", run, study) }

// SOPInstanceUID is the SOP Instance UID of the generated instance.
func (s DicomSpec) SOPInstanceUID() string { return UID(s.Run, "sop", s.Study*1_000_000+s.Instance) }

// DicomFile returns a valid DICOM Part-10 file (128-byte preamble, "DICM",
// group 0002 meta header, then the dataset in Explicit VR Little Endian) of
// a Secondary Capture 8-bit MONOCHROME2 image whose pixels depend on the
// instance number.
func DicomFile(s DicomSpec) []byte {
	if s.Size <= 0 {
		s.Size = 8
	}
	if s.Study <= 0 {
		s.Study = 1
	}
	if s.StudyDate == "" {
		s.StudyDate = "20260101"
	}
	sop := s.SOPInstanceUID()
	pixels := make([]byte, s.Size*s.Size)
	for i := range pixels {
		pixels[i] = byte(s.Instance*7 + i)
	}
	var ds bytes.Buffer
	// Elements in ascending tag order, as Part 5 section 7.1 requires.
	writeElement(&ds, 0x0008, 0x0016, "UI", uidBytes(sopClassSecondaryCapture))
	writeElement(&ds, 0x0008, 0x0018, "UI", uidBytes(sop))
	writeElement(&ds, 0x0008, 0x0020, "DA", text(s.StudyDate))
	writeElement(&ds, 0x0008, 0x0030, "TM", text("120000"))
	writeElement(&ds, 0x0008, 0x0050, "SH", text(fmt.Sprintf("ACC%06d", s.Study)))
	writeElement(&ds, 0x0008, 0x0060, "CS", text("OT"))
	writeElement(&ds, 0x0008, 0x0064, "CS", text("WSD"))
	writeElement(&ds, 0x0010, 0x0010, "PN", text(fmt.Sprintf("KOMMONS^%s^%d", s.Run, s.Study)))
	writeElement(&ds, 0x0010, 0x0020, "LO", text(PatientID(s.Run, s.Study)))
	writeElement(&ds, 0x0010, 0x0030, "DA", text("19700101"))
	writeElement(&ds, 0x0010, 0x0040, "CS", text("O"))
	writeElement(&ds, 0x0020, 0x000D, "UI", uidBytes(UID(s.Run, "study", s.Study)))
	writeElement(&ds, 0x0020, 0x000E, "UI", uidBytes(UID(s.Run, "series", s.Study)))
	writeElement(&ds, 0x0020, 0x0010, "SH", text(fmt.Sprintf("S%d", s.Study)))
	writeElement(&ds, 0x0020, 0x0011, "IS", text("1"))
	writeElement(&ds, 0x0020, 0x0013, "IS", text(fmt.Sprint(s.Instance)))
	writeElement(&ds, 0x0028, 0x0002, "US", u16(1))
	writeElement(&ds, 0x0028, 0x0004, "CS", text("MONOCHROME2"))
	writeElement(&ds, 0x0028, 0x0010, "US", u16(uint16(s.Size)))
	writeElement(&ds, 0x0028, 0x0011, "US", u16(uint16(s.Size)))
	writeElement(&ds, 0x0028, 0x0100, "US", u16(8))
	writeElement(&ds, 0x0028, 0x0101, "US", u16(8))
	writeElement(&ds, 0x0028, 0x0102, "US", u16(7))
	writeElement(&ds, 0x0028, 0x0103, "US", u16(0))
	writeElement(&ds, 0x7FE0, 0x0010, "OB", pad(pixels, 0))

	var meta bytes.Buffer
	writeElement(&meta, 0x0002, 0x0001, "OB", []byte{0, 1})
	writeElement(&meta, 0x0002, 0x0002, "UI", uidBytes(sopClassSecondaryCapture))
	writeElement(&meta, 0x0002, 0x0003, "UI", uidBytes(sop))
	writeElement(&meta, 0x0002, 0x0010, "UI", uidBytes(transferSyntaxExplicitLE))
	writeElement(&meta, 0x0002, 0x0012, "UI", uidBytes(implementationClassUID))

	var out bytes.Buffer
	out.Write(make([]byte, 128))
	out.WriteString("DICM")
	length := make([]byte, 4)
	binary.LittleEndian.PutUint32(length, uint32(meta.Len()))
	writeElement(&out, 0x0002, 0x0000, "UL", length)
	out.Write(meta.Bytes())
	out.Write(ds.Bytes())
	return out.Bytes()
}

// writeElement writes one Explicit VR Little Endian element; value must
// already have even length.
func writeElement(w *bytes.Buffer, group, element uint16, vr string, value []byte) {
	var hdr [12]byte
	binary.LittleEndian.PutUint16(hdr[0:], group)
	binary.LittleEndian.PutUint16(hdr[2:], element)
	copy(hdr[4:6], vr)
	switch vr {
	case "OB", "OW", "OF", "SQ", "UT", "UN": // 2 reserved bytes, 32-bit length
		binary.LittleEndian.PutUint32(hdr[8:], uint32(len(value)))
		w.Write(hdr[:12])
	default:
		binary.LittleEndian.PutUint16(hdr[6:], uint16(len(value)))
		w.Write(hdr[:8])
	}
	w.Write(value)
}

// text pads a character value to even length with a space.
func text(s string) []byte { return pad([]byte(s), ' ') }

// uidBytes pads a UID to even length with NUL.
func uidBytes(s string) []byte { return pad([]byte(s), 0) }

func pad(b []byte, with byte) []byte {
	if len(b)%2 == 1 {
		return append(b, with)
	}
	return b
}

func u16(v uint16) []byte {
	b := make([]byte, 2)
	binary.LittleEndian.PutUint16(b, v)
	return b
}
