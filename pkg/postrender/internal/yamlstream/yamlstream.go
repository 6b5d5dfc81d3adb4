// Package yamlstream splits a multi-document YAML stream into its documents
// without parsing or re-encoding them, so that joining the documents gives back
// the input byte for byte.
//
// A document starts at a line whose first three bytes are "---" followed by a
// space, a tab or the end of the line (any YAML line break: LF, CRLF, CR, NEL,
// LS, PS) (the YAML document-start marker, which the
// YAML specification forbids inside any scalar at column 0), or at the start of
// the stream. Indented "---" lines, such as those in a block scalar holding
// another YAML file, are content and never split a document.
package yamlstream

import (
	"bytes"
	"regexp"
)

// Document is one document of a stream, exactly as it appeared in the input.
type Document struct {
	// Index is the position of the document in the stream, counting from 0;
	// text before the first "---" line, if any, is document 0.
	Index int
	// Raw holds the document's bytes including its "---" line, comments and
	// line endings; concatenating Raw of every document gives the input.
	Raw []byte
	// Line is the 1-based line of the stream on which Raw starts.
	Line int
	// Source is the template file the document came from, taken from Helm's
	// "# Source: path" comment or, when absent, from Helm 4's
	// postrenderer.helm.sh/postrender-filename annotation; empty when neither.
	Source string
}

// Split cuts data into documents. It never fails: malformed YAML is detected
// later, by the parser, with the document's index and line for the message.
func Split(data []byte) []Document {
	if onlyLF(data) {
		return splitLF(data)
	}
	return splitLines(data)
}

// splitLines is Split reading line by line, for any line break.
func splitLines(data []byte) []Document {
	var docs []Document
	start, startLine, line := 0, 1, 1
	for pos := 0; pos < len(data); {
		next := nextLine(data, pos)
		if pos > start && isDocumentStart(data[pos:next]) {
			docs = appendDoc(docs, data[start:pos], startLine)
			start, startLine = pos, line
		}
		pos = next
		line++
	}
	if start < len(data) || len(docs) == 0 && len(data) > 0 {
		docs = appendDoc(docs, data[start:], startLine)
	}
	return docs
}

// onlyLF reports whether LF is the only line break in data (no CR, NEL, LS
// or PS), so lines can be found with a byte search.
func onlyLF(data []byte) bool {
	return bytes.IndexByte(data, '\r') < 0 &&
		(bytes.IndexByte(data, 0xC2) < 0 || !bytes.Contains(data, []byte("\u0085"))) &&
		(bytes.IndexByte(data, 0xE2) < 0 || !bytes.Contains(data, []byte("\u2028")) && !bytes.Contains(data, []byte("\u2029")))
}

// splitLF is Split for data whose only line break is LF: it jumps from one
// "\n---" to the next instead of reading every line.
func splitLF(data []byte) []Document {
	if len(data) == 0 {
		return nil
	}
	docs := make([]Document, 0, bytes.Count(data, []byte("\n---"))+1)
	start, startLine := 0, 1
	for pos := 0; ; {
		i := bytes.Index(data[pos:], []byte("\n---"))
		if i < 0 {
			break
		}
		ls := pos + i + 1 // the line starting with "---"
		pos = ls
		if ls+3 < len(data) {
			if c := data[ls+3]; c != ' ' && c != '\t' && c != '\n' {
				continue
			}
		}
		docs = appendDoc(docs, data[start:ls], startLine)
		startLine += bytes.Count(data[start:ls], []byte("\n"))
		start = ls
	}
	if start < len(data) || len(docs) == 0 && len(data) > 0 {
		docs = appendDoc(docs, data[start:], startLine)
	}
	return docs
}

// nextLine returns the offset after the line break ending the line at pos.
// Line breaks are those of YAML 1.1 as libyaml reads them: LF, CRLF, CR,
// NEL (U+0085), LS (U+2028) and PS (U+2029).
func nextLine(data []byte, pos int) int {
	for i := pos; i < len(data); i++ {
		switch data[i] {
		case '\n':
			return i + 1
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				return i + 2
			}
			return i + 1
		case 0xC2:
			if i+1 < len(data) && data[i+1] == 0x85 {
				return i + 2
			}
		case 0xE2:
			if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
				return i + 3
			}
		}
	}
	return len(data)
}

func appendDoc(docs []Document, raw []byte, line int) []Document {
	return append(docs, Document{Index: len(docs), Raw: raw, Line: line, Source: source(raw)})
}

// isDocumentStart reports whether the line (with its line ending) is a "---" marker.
func isDocumentStart(line []byte) bool {
	if len(line) < 3 || line[0] != '-' || line[1] != '-' || line[2] != '-' {
		return false
	}
	if len(line) == 3 {
		return true
	}
	switch line[3] {
	case ' ', '\t', '\n', '\r':
		return true
	case 0xC2, 0xE2: // NEL, LS, PS (nextLine only ends a line on those)
		rest := string(line[3:])
		return rest == "\u0085" || rest == "\u2028" || rest == "\u2029"
	}
	return false
}

var (
	helm4Filename = regexp.MustCompile(`(?m)^\s*["']?postrenderer\.helm\.sh/postrender-filename["']?\s*:\s*["']?([^"'\r\n]+?)["']?\s*,?\s*\r?$`)
)

// source finds the template file name of a document, for error messages.
func source(raw []byte) string {
	// Helm writes "# Source: path" as a whole line near the top; look at
	// each occurrence's line instead of running a regexp over the document.
	for off := 0; ; {
		i := bytes.Index(raw[off:], []byte("# Source:"))
		if i < 0 {
			break
		}
		i += off
		off = i + 9
		if i > 0 && raw[i-1] != '\n' && raw[i-1] != '\r' {
			continue
		}
		end := nextLine(raw, i)
		if name := string(bytes.TrimSpace(raw[off:end])); name != "" {
			return name
		}
	}
	if bytes.Contains(raw, []byte("postrenderer.helm.sh/postrender-filename")) {
		if m := helm4Filename.FindSubmatch(raw); m != nil {
			return string(m[1])
		}
	}
	return ""
}
