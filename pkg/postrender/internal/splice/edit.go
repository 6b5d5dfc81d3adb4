package splice

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/kommons/kommons/pkg/postrender/internal/blockyaml"
)

// Doc is one parsed YAML document and the edits planned for it. Edits are
// applied to the original text by Result; the parsed tree is updated alongside
// so that Result can check the new text parses to exactly that tree.
type Doc struct {
	*Text
	// Root is the document's top node (nil for an empty or comment-only document).
	Root  *yaml.Node
	style insertStyle
	edits []edit
	// units are the block insertions that can be checked by parsing only
	// the text around them; fullCheck is set when an edit is not one.
	units     []*unit
	fullCheck bool
	// keep is what the fast parser built of the document (nil: all of it);
	// the check parses the result the same way.
	keep *blockyaml.Keep
	// finalLineDone is set once the line break that insertions at the end
	// of a document without a final one need has been added (see lineAfter).
	finalLineDone bool
}

// unit is a block collection that received appended entries. Its check
// parses the text from the line of its last original entry to the end of the
// appended text and compares it with those entries.
type unit struct {
	coll      *yaml.Node
	first     int // index in coll.Content of the last original entry
	lineStart int // old offset of the line holding that entry
}

type edit struct {
	start, end int
	text       string
	// col orders insertions at the same offset: lines of a more deeply
	// indented (inner) collection go before those of its parents.
	col int
	// newStart and newEnd locate the edit's text in the result.
	newStart, newEnd int
	// unit is the block insertion this edit belongs to, if any.
	unit *unit
}

// errMultipleDocuments is returned by Parse when src holds more than one document.
var errMultipleDocuments = errors.New("more than one YAML document (content after a '...' end marker?)")

// Parse parses a single YAML document; a second document in src (possible
// only after a "..." end marker) is an error. The block-style subset charts
// are written in is read by package blockyaml; anything else by yaml.v3.
func Parse(src []byte) (*Doc, error) { return ParseKeep(src, nil) }

// ParseKeep is Parse building, when the document is in blockyaml's subset,
// only the subtrees keep selects (see blockyaml.Keep): the others are
// childless nodes whose ends are known, so edits next to them work, but
// edits inside them are refused. yaml.v3 always builds the whole tree.
func ParseKeep(src []byte, keep *blockyaml.Keep) (*Doc, error) {
	if bd, ok := blockyaml.ParseKeep(src, keep); ok {
		d := &Doc{Text: NewText(src), Root: bd.Root, keep: keep}
		d.unbuilt = bd.Unbuilt
		d.style = insertStyle{Indent: bd.Layout.Indent, SeqIndent: max(bd.Layout.SeqIndent, 0), NL: d.NL}
		if d.style.Indent <= 0 || d.style.Indent > 8 {
			d.style.Indent = 2
		}
		return d, nil
	}
	var n yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	err := dec.Decode(&n)
	if err == io.EOF {
		return &Doc{Text: NewText(src)}, nil
	}
	if err != nil {
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("line %d: %w", extra.Line, errMultipleDocuments)
	}
	d := &Doc{Text: NewText(src)}
	if len(n.Content) > 0 {
		d.Root = n.Content[0]
	}
	d.style = d.detectStyle()
	return d, nil
}

// Changed reports whether any edit is planned.
func (d *Doc) Changed() bool { return len(d.edits) > 0 }

func (d *Doc) detectStyle() insertStyle {
	s := insertStyle{Indent: 2, SeqIndent: 0, NL: d.NL}
	foundIndent, foundSeq := false, false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || foundIndent && foundSeq || n.Style&yaml.FlowStyle != 0 {
			return
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if v.Style&yaml.FlowStyle != 0 || v.Line <= k.Line {
					if v.Kind == yaml.SequenceNode && v.Style&yaml.FlowStyle == 0 && !foundSeq && len(v.Content) > 0 {
						// "key: - a" is not valid; sequences always start on a new line
					}
					walk(v)
					continue
				}
				switch v.Kind {
				case yaml.MappingNode:
					if !foundIndent && v.Column > k.Column {
						s.Indent, foundIndent = v.Column-k.Column, true
					}
				case yaml.SequenceNode:
					if !foundSeq && len(v.Content) > 0 {
						if dash, err := d.dashOffset(v.Content[0]); err == nil {
							if c := d.column(dash) - (k.Column - 1); c >= 0 {
								s.SeqIndent, foundSeq = c, true
							}
						}
					}
				}
				walk(v)
			}
		case yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c)
			}
		}
	}
	walk(d.Root)
	if s.Indent <= 0 || s.Indent > 8 {
		s.Indent = 2
	}
	return s
}

// IsFlow reports whether the collection n is written in flow style ({} or []).
func (d *Doc) IsFlow(n *yaml.Node) bool {
	return n.Style&yaml.FlowStyle != 0 || (n.Line > 0 && d.isFlowStart(n))
}

// add records an edit the region check does not cover.
func (d *Doc) add(start, end int, text string) {
	d.fullCheck = true
	d.addAt(start, end, text, 0)
}

func (d *Doc) addAt(start, end int, text string, col int) int {
	d.edits = append(d.edits, edit{start: start, end: end, text: text, col: col})
	return len(d.edits) - 1
}

// addUnit records an insertion appending to block collection coll whose
// last original entry (a key, or a sequence item's dash) starts at entry.
func (d *Doc) addUnit(coll *yaml.Node, first, entry, editIndex int) {
	for _, u := range d.units {
		if u.coll == coll {
			d.edits[editIndex].unit = u
			return
		}
	}
	ls := d.lineStarts[d.Line(entry)-1]
	if !isBlankLine(d.src, ls, entry) {
		d.fullCheck = true // something precedes the entry on its line
	}
	u := &unit{coll: coll, first: first, lineStart: ls}
	d.units = append(d.units, u)
	d.edits[editIndex].unit = u
}

// keyColumn is the 0-based column of a block mapping's keys.
func (d *Doc) keyColumn(m *yaml.Node) int { return d.column(d.Start(m.Content[0])) }

// lineAfter returns the offset where whole lines are inserted after the
// block node ending at end. When the node's line is the last one and has no
// line break, the first such insertion also adds one line break before all
// the inserted lines (and keeps a block scalar ending there unchanged).
func (d *Doc) lineAfter(end int) int {
	if ns := d.nextLineStart(end); ns >= 0 {
		return ns
	}
	if !d.finalLineDone {
		d.finalLineDone = true
		d.stripFinalBlockScalar()
		// The highest column sorts this edit before every insertion at
		// the end of the text.
		d.addAt(len(d.src), len(d.src), d.NL, math.MaxInt)
	}
	return len(d.src)
}

// blockHeader matches a block scalar's header from its indicator on: an
// optional indentation digit and chomping indicator (in either order), then
// the end of the line or a comment.
var blockHeader = regexp.MustCompile(`^[|>]([1-9][+-]?|[+-][1-9]?)?(?:[ \t]+#.*|[ \t]*)$`)

// stripFinalBlockScalar keeps the value of a block scalar that ends the
// document when lines are inserted after it. When the document has no
// final line break, such a scalar (clip or keep chomping) has none in its
// value either, and the line break the insertion adds would give it one,
// unless its header strips final line breaks: "|" becomes "|-", "|+"
// becomes "|-" (">" alike). The scalar is the last node of the tree (a
// block scalar running into the end of the input is always parsed in full,
// see blockyaml); what this misses is still caught by Result's check.
func (d *Doc) stripFinalBlockScalar() {
	n := d.Root
	for n != nil && len(n.Content) > 0 && (n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode || n.Kind == yaml.DocumentNode) {
		n = n.Content[len(n.Content)-1]
	}
	if n == nil || n.Kind != yaml.ScalarNode || n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 ||
		strings.HasSuffix(n.Value, "\n") || n.Line == 0 {
		return
	}
	// The header may end the text, where lineAfter adds its line break:
	// the highest column sorts the indicator before it.
	strip := func(start, end int) {
		d.fullCheck = true
		d.addAt(start, end, "-", math.MaxInt)
	}
	// The node starts at its indicator, or at an anchor or tag before it.
	start := d.Start(n)
	end := d.lineEnd(start)
	for i := start; i < end; i++ {
		if c := d.src[i]; c != '|' && c != '>' {
			continue
		}
		m := blockHeader.FindSubmatchIndex(d.src[i:end])
		if m == nil {
			continue
		}
		if m[2] < 0 { // no indicators: add strip
			strip(i+1, i+1)
			return
		}
		ind := d.src[i+m[2] : i+m[3]]
		switch p := bytes.IndexAny(ind, "+-"); {
		case p < 0:
			strip(i+m[3], i+m[3])
		case ind[p] == '+':
			strip(i+m[2]+p, i+m[2]+p+1)
		}
		return
	}
}

// SetKey sets key in mapping m to value. The key must be absent, or present
// with a null value or an empty collection, which is then replaced.
func (d *Doc) SetKey(m *yaml.Node, key string, value *yaml.Node) error {
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %w", m.Line, errNotMapping)
	}
	keyNode := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
	flow := d.IsFlow(m)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value != key {
			continue
		}
		if k.Line == 0 {
			return fmt.Errorf("key %q set twice", key)
		}
		if d.isUnbuilt(v) || !isEmpty(v) {
			return fmt.Errorf("line %d: key %q already has a value", k.Line, key)
		}
		if v.Anchor != "" {
			return fmt.Errorf("line %d: value of %q carries anchor &%s; refusing to replace it", v.Line, key, v.Anchor)
		}
		colon, err := d.keyColonEnd(k, flow)
		if err != nil {
			return err
		}
		end := colon
		if !isEmptyNull(v) {
			if end, err = d.End(v, d.column(d.Start(k)), flow); err != nil {
				return err
			}
		}
		if flow {
			d.add(colon, end, " "+flowText(value))
		} else {
			d.add(colon, end, d.style.blockValue(value, d.column(d.Start(k))))
		}
		m.Content[i+1] = value
		return nil
	}
	positioned := lastPositioned(m.Content, 2)
	if flow {
		fe, err := d.flowEnd(m)
		if err != nil {
			return err
		}
		pair := jsonString(key) + ": " + flowText(value)
		if positioned < 0 {
			open := d.valueStart(m)
			sep := ""
			if len(m.Content) > 0 {
				// An earlier SetKey of this run inserted at the same offset;
				// edits there keep the order they were made in.
				sep = ", "
			}
			d.add(open+1, open+1, sep+pair)
		} else {
			lk, lv := m.Content[positioned], m.Content[positioned+1]
			ve := fe - 1
			if !isEmptyNull(lv) {
				e, err := d.End(lv, 0, true)
				if err != nil {
					return err
				}
				ve = e
			}
			if lk.Line > m.Line {
				d.add(ve, ve, ","+d.NL+strings.Repeat(" ", d.column(d.Start(lk)))+pair)
			} else {
				d.add(ve, ve, ", "+pair)
			}
		}
	} else {
		if positioned < 0 {
			return fmt.Errorf("line %d: cannot insert into an empty block mapping", m.Line)
		}
		end, err := d.blockEnd(m)
		if err != nil {
			return err
		}
		at := d.lineAfter(end)
		col := d.keyColumn(m)
		i := d.addAt(at, at, strings.Repeat(" ", col)+scalarText(keyNode)+":"+d.style.blockValue(value, col)+d.NL, col)
		d.addUnit(m, positioned, d.Start(m.Content[positioned]), i)
	}
	m.Content = append(m.Content, keyNode, value)
	return nil
}

var errNotMapping = errors.New("not a mapping")

// isEmpty reports whether n is null or an empty collection.
func isEmpty(n *yaml.Node) bool {
	switch n.Kind {
	case yaml.ScalarNode:
		return n.ShortTag() == "!!null"
	case yaml.MappingNode, yaml.SequenceNode:
		return len(n.Content) == 0
	}
	return false
}

// Append adds items at the end of the non-empty sequence seq.
func (d *Doc) Append(seq *yaml.Node, items ...*yaml.Node) error {
	if seq.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: not a sequence", seq.Line)
	}
	if len(items) == 0 {
		return nil
	}
	last := lastPositioned(seq.Content, 1)
	if last < 0 {
		return fmt.Errorf("line %d: cannot append to an empty sequence", seq.Line)
	}
	if d.IsFlow(seq) {
		lv := seq.Content[last]
		e, err := d.End(lv, 0, true)
		if err != nil {
			return err
		}
		var b strings.Builder
		for _, it := range items {
			if lv.Line > seq.Line {
				b.WriteString("," + d.NL + strings.Repeat(" ", d.column(d.Start(lv))))
			} else {
				b.WriteString(", ")
			}
			b.WriteString(flowText(it))
		}
		d.add(e, e, b.String())
	} else {
		dash, err := d.dashOffset(seq.Content[last])
		if err != nil {
			return err
		}
		end, err := d.blockEnd(seq)
		if err != nil {
			return err
		}
		at := d.lineAfter(end)
		var b strings.Builder
		for _, it := range items {
			b.WriteString(d.style.item(it, d.column(dash)))
			b.WriteString(d.NL)
		}
		i := d.addAt(at, at, b.String(), d.column(dash)+1)
		d.addUnit(seq, last, dash, i)
	}
	seq.Content = append(seq.Content, items...)
	return nil
}

// ReplaceScalar replaces the text of scalar n (keeping its anchor or tag)
// with value; parentIndent and flow describe n's context as for End.
func (d *Doc) ReplaceScalar(n *yaml.Node, parentIndent int, flow bool, value *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Line == 0 || isEmptyNull(n) {
		return fmt.Errorf("line %d: not a replaceable scalar", n.Line)
	}
	start := d.valueStart(n)
	end, err := d.End(n, parentIndent, flow)
	if err != nil {
		return err
	}
	text := scalarText(value)
	if flow {
		text = flowText(value)
	}
	d.add(start, end, text)
	n.Value, n.Tag, n.Style = value.Value, value.Tag, value.Style
	return nil
}

// Result applies the planned edits and checks that the new text parses to
// the edited tree; any difference is reported as an error, never written.
func (d *Doc) Result() ([]byte, error) {
	if len(d.edits) == 0 {
		return d.src, nil
	}
	sort.SliceStable(d.edits, func(i, j int) bool {
		a, b := d.edits[i], d.edits[j]
		return a.start < b.start || a.start == b.start && a.col > b.col
	})
	var out bytes.Buffer
	out.Grow(len(d.src) + 256)
	pos := 0
	for i := range d.edits {
		e := &d.edits[i]
		if e.start < pos {
			return nil, fmt.Errorf("overlapping edits at line %d", d.Line(e.start))
		}
		out.Write(d.src[pos:e.start])
		e.newStart = out.Len()
		out.WriteString(e.text)
		e.newEnd = out.Len()
		pos = e.end
	}
	out.Write(d.src[pos:])
	res := out.Bytes()
	if !d.fullCheck && d.checkUnits(res) {
		return res, nil
	}
	check, err := ParseKeep(res, d.keep)
	if err != nil {
		return nil, fmt.Errorf("edited document does not parse (%v); this is a bug, please report it with the input", err)
	}
	if path, ok := Equal(d.Root, check.Root, ""); !ok {
		return nil, fmt.Errorf("edited document differs from the intended result at %s; this is a bug, please report it with the input", path)
	}
	return res, nil
}

// newOffset maps the start of an original line that no edit replaces to
// the result; text inserted exactly there precedes the line.
func (d *Doc) newOffset(old int) int {
	delta := 0
	for _, e := range d.edits {
		if e.start > old || e.start == old && e.end != old {
			break
		}
		delta += (e.newEnd - e.newStart) - (e.end - e.start)
	}
	return old + delta
}

// checkUnits parses the text around each block insertion and compares it
// with the intended entries; false means the whole document must be checked.
func (d *Doc) checkUnits(res []byte) bool {
	for _, u := range d.units {
		start := d.newOffset(u.lineStart)
		end := start
		for _, e := range d.edits {
			if e.unit == u {
				end = max(end, e.newEnd)
			}
		}
		got, ok := parseRoot(res[start:end], d.keep)
		if !ok {
			return false
		}
		want := &yaml.Node{Kind: u.coll.Kind, Content: u.coll.Content[u.first:]}
		if _, ok := Equal(want, got, ""); !ok {
			return false
		}
	}
	return true
}

// parseRoot parses a fragment of a document (the fast way when it can,
// building what keep selects) and returns its top node.
func parseRoot(src []byte, keep *blockyaml.Keep) (*yaml.Node, bool) {
	if bd, ok := blockyaml.ParseKeep(src, keep); ok {
		return bd.Root, true
	}
	if keep != nil {
		return nil, false // a full tree would not compare with a partial one
	}
	var n yaml.Node
	if err := yaml.Unmarshal(src, &n); err != nil || len(n.Content) == 0 {
		return nil, false
	}
	return n.Content[0], true
}

// Equal compares two trees by kind, resolved tag and value, key order
// included; aliases are compared by anchor name without expanding them. It
// returns the path of the first difference.
func Equal(a, b *yaml.Node, path string) (string, bool) {
	if diff := firstDiff(a, b); diff != nil {
		return path + diffPath(diff), false
	}
	return path, true
}

// firstDiff returns the child indexes leading to the first difference, in
// reverse order, or nil when the trees are equal.
func firstDiff(a, b *yaml.Node) []int {
	if a == nil || b == nil {
		if a == b {
			return nil
		}
		return []int{}
	}
	if a.Kind != b.Kind || a.Anchor != b.Anchor {
		return []int{}
	}
	switch a.Kind {
	case yaml.AliasNode:
		if a.Value != b.Value {
			return []int{}
		}
	case yaml.ScalarNode:
		if a.Value != b.Value || a.ShortTag() != b.ShortTag() {
			return []int{}
		}
	default:
		if len(a.Content) != len(b.Content) {
			return []int{}
		}
		for i := range a.Content {
			if d := firstDiff(a.Content[i], b.Content[i]); d != nil {
				return append(d, i)
			}
		}
	}
	return nil
}

func diffPath(rev []int) string {
	var b strings.Builder
	for i := len(rev) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "[%d]", rev[i])
	}
	if b.Len() == 0 {
		return "(root)"
	}
	return b.String()
}
