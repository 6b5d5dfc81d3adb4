package blockyaml

import yaml "go.yaml.in/yaml/v3"

// blockBody is the value of a literal or folded scalar as its lines are
// read.
type blockBody struct {
	literal, keep bool
	buf           []byte
	trailing      int  // empty lines read and not yet added
	leadingBreak  bool // a line was read before the current one
	leadingBlank  bool // that line began with a space or tab (folding keeps its break)
}

// blockScalar parses a literal or folded scalar whose indicator is at the
// cursor; parent is the indentation of the collection holding it.
func (p *parser) blockScalar(parent int) *yaml.Node {
	line, col := p.line, 0
	if p.build {
		col = p.column(p.pos)
	}
	b := &blockBody{literal: p.src[p.pos] == '|'}
	chomp, j := p.blockHeader(p.pos + 1)
	b.keep = chomp == 1
	// lastEnd follows splice.Text.End: the end of the last line holding
	// more than spaces, or with keep chomping of the last line of any kind.
	p.lastEnd = j
	if j >= len(p.src) {
		fail() // see endBlockScalar: the input ends without a line break
	}
	p.newLine(j + 1)
	indent, at := p.blockIndent(b, parent)
	at = p.blockLines(b, at, indent)
	var v *yaml.Node
	if p.build {
		style := yaml.LiteralStyle
		if !b.literal {
			style = yaml.FoldedStyle
		}
		v = p.node(yaml.ScalarNode, style, tagStr, b.value(chomp), line, col)
	}
	p.endBlockScalar(at, parent)
	return v
}

// blockHeader reads the rest of a block scalar header from i (after the
// indicator): the chomping indicator (-1 strip, 0 clip, 1 keep), spaces and
// an optional comment. It returns the chomping and the offset of the line
// break ending the header (len(src) at the end of the input). Explicit
// indentation indicators are left to yaml.v3.
func (p *parser) blockHeader(i int) (chomp, j int) {
	n := len(p.src)
	if i < n {
		switch p.src[i] {
		case '+':
			chomp = 1
			i++
		case '-':
			chomp = -1
			i++
		}
	}
	if i < n && p.src[i] >= '0' && p.src[i] <= '9' {
		fail() // explicit indentation
	}
	j = p.skipSpaces(i)
	if j < n && p.src[j] == '#' {
		if j == i {
			fail()
		}
		j = p.comment(j)
	}
	if j < n && p.src[j] != '\n' {
		fail()
	}
	return chomp, j
}

// blockIndent reads the empty lines before the first content line, which
// sets the indentation. It returns the indentation and the offset after it
// on the first content line.
func (p *parser) blockIndent(b *blockBody, parent int) (indent, at int) {
	n := len(p.src)
	maxInd := 0
	for {
		k := p.skipSpaces(p.pos)
		maxInd = max(maxInd, k-p.pos)
		if k < n && p.src[k] == '\n' {
			p.emptyLine(b, k)
			continue
		}
		if k >= n && b.keep {
			p.lastEnd = n
		}
		if k < n && (p.src[k] == '\t' || p.src[k] == '\r') {
			fail()
		}
		break
	}
	indent = max(maxInd, parent+1, 1)
	lineInd := p.skipSpaces(p.pos) - p.pos
	if lineInd < maxInd && p.skipSpaces(p.pos) < len(p.src) {
		fail() // a leading blank line indented deeper than the text
	}
	return indent, p.pos + min(lineInd, indent)
}

// emptyLine counts the empty line whose line break is at k and moves to
// the next line.
func (p *parser) emptyLine(b *blockBody, k int) {
	if b.keep {
		p.lastEnd = k
	}
	b.trailing++
	p.newLine(k + 1)
}

// blockLines reads the content lines of a block scalar, at being the offset
// after the indentation of the first. It returns the offset where the
// scalar ends: the content of a less indented line, or len(src).
func (p *parser) blockLines(b *blockBody, at, indent int) int {
	n := len(p.src)
	for at-p.pos == indent && at < n {
		c := p.src[at]
		trailingBlank := c == ' ' || c == '\t'
		if p.build {
			b.startLine(trailingBlank)
		}
		b.leadingBreak, b.trailing = false, 0
		b.leadingBlank = trailingBlank
		e := p.lineEnd(at)
		p.text(at, e, true)
		if p.build {
			b.buf = append(b.buf, p.src[at:e]...)
		}
		if b.keep || !allSpaces(p.src[at:e]) {
			p.lastEnd = e
		}
		if e >= n {
			return n
		}
		b.leadingBreak = true
		p.newLine(e + 1)
		at = p.skipEmptyLines(b, indent)
	}
	return at
}

// skipEmptyLines reads empty lines and the next line's indentation, up to
// indent, and returns the offset after it.
func (p *parser) skipEmptyLines(b *blockBody, indent int) int {
	n := len(p.src)
	for {
		k := p.pos
		for k < n && p.src[k] == ' ' && k-p.pos < indent {
			k++
		}
		if k < n && k-p.pos < indent && (p.src[k] == '\t' || p.src[k] == '\r') {
			fail()
		}
		if k < n && p.src[k] == '\n' {
			p.emptyLine(b, k)
			continue
		}
		if k >= n && b.keep {
			p.lastEnd = n
		}
		return k
	}
}

// startLine adds what separates the previous content line from the next:
// a folded scalar joins lines with a space, except around lines that begin
// with a blank, and empty lines become line breaks.
func (b *blockBody) startLine(trailingBlank bool) {
	if !b.literal && b.leadingBreak && !b.leadingBlank && !trailingBlank {
		if b.trailing == 0 {
			b.buf = append(b.buf, ' ')
		}
	} else if b.leadingBreak {
		b.buf = append(b.buf, '\n')
	}
	for ; b.trailing > 0; b.trailing-- {
		b.buf = append(b.buf, '\n')
	}
}

// value returns the scalar's value after chomping.
func (b *blockBody) value(chomp int) string {
	if chomp != -1 && b.leadingBreak {
		b.buf = append(b.buf, '\n')
	}
	if chomp == 1 {
		for ; b.trailing > 0; b.trailing-- {
			b.buf = append(b.buf, '\n')
		}
	}
	return string(b.buf)
}

// endBlockScalar moves the cursor after a block scalar that ended at at (a
// less indented line or the end of the input).
func (p *parser) endBlockScalar(at, parent int) {
	n := len(p.src)
	// When the input ends without a line break inside the scalar, text
	// appended after it (an inserted key) needs that line break, and the
	// splice changes the scalar's header so that its value stays the same:
	// leave such documents to yaml.v3, so that the check of the edit
	// compares the whole tree, this scalar included.
	if at >= n && p.src[n-1] != '\n' {
		fail()
	}
	if at >= n {
		p.pos, p.eof, p.ind = n, true, -1
	} else {
		p.pos = p.ls
		p.skipToContent()
	}
	if !p.eof && p.ind > parent {
		fail()
	}
}

func allSpaces(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}
