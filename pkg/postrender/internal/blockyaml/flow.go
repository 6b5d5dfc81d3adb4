package blockyaml

import (
	yaml "go.yaml.in/yaml/v3"
)

// flowPlainStop lists the characters that end (or, being unsupported, abort)
// a plain scalar inside a flow collection.
var flowPlainStop = func() (t [256]bool) {
	for _, c := range ",[]{}:#'\"&*!|>%@`?" {
		t[c] = true
	}
	return t
}()

// flow parses a flow collection that opens and closes on the cursor's line.
func (p *parser) flow(i int) *yaml.Node {
	p.enter()
	n := len(p.src)
	open := p.src[i]
	isMap := open == '{'
	var f *yaml.Node
	if p.build {
		kind, tag := yaml.SequenceNode, tagSeq
		if isMap {
			kind, tag = yaml.MappingNode, tagMap
		}
		f = p.node(kind, yaml.FlowStyle, tag, "", p.line, p.column(i))
	}
	start, keysStart := len(p.stack), len(p.keys)
	j := p.skipSpaces(i + 1)
	closing := byte(']')
	if isMap {
		closing = '}'
	}
	if j < n && p.src[j] == closing {
		j++
	} else {
		for {
			if isMap {
				k, text, e := p.flowScalar(j)
				p.checkDuplicate(keysStart, text)
				e = p.skipSpaces(e)
				if e+1 >= n || p.src[e] != ':' || p.src[e+1] != ' ' {
					fail()
				}
				v, e2 := p.flowItem(p.skipSpaces(e + 1))
				if p.build {
					p.stack = append(p.stack, k, v)
				}
				j = e2
			} else {
				v, e := p.flowItem(j)
				if p.build {
					p.stack = append(p.stack, v)
				}
				j = e
			}
			j = p.skipSpaces(j)
			if j >= n {
				fail()
			}
			if p.src[j] == closing {
				j++
				break
			}
			if p.src[j] != ',' {
				fail()
			}
			j = p.skipSpaces(j + 1)
			if j >= n || p.src[j] == closing {
				fail() // trailing comma: valid YAML, but keep to the plain subset
			}
		}
	}
	p.keys = p.keys[:keysStart]
	if p.build {
		f.Content = p.content(start)
	}
	p.pos, p.lastEnd = j, j
	p.depth--
	return f
}

func (p *parser) skipSpaces(i int) int {
	for i < len(p.src) && p.src[i] == ' ' {
		i++
	}
	return i
}

// flowItem parses a scalar or nested collection inside a flow collection.
func (p *parser) flowItem(i int) (*yaml.Node, int) {
	if i >= len(p.src) {
		fail()
	}
	if c := p.src[i]; c == '[' || c == '{' {
		v := p.flow(i)
		return v, p.pos
	}
	v, _, e := p.flowScalar(i)
	return v, e
}

// flowScalar parses a quoted or plain scalar inside a flow collection and
// returns its node (build mode), its value (check mode) and its end.
func (p *parser) flowScalar(i int) (*yaml.Node, []byte, int) {
	n := len(p.src)
	if i >= n {
		fail()
	}
	c := p.src[i]
	if c == '"' || c == '\'' {
		v, end, style := p.quoted(i, true)
		if p.build {
			return p.node(yaml.ScalarNode, style, tagStr, v, p.line, p.column(i)), []byte(v), end
		}
		return nil, []byte(v), end
	}
	if flowPlainStop[c] || c == '-' && (i+1 >= n || p.src[i+1] == ' ' || flowPlainStop[p.src[i+1]]) {
		fail()
	}
	j := i
	for j < n {
		b := p.src[j]
		if flowPlainStop[b] {
			break
		}
		switch class[b] {
		case cText:
			j++
		case cHigh:
			j += p.runeAt(j)
		case cBreak:
			fail() // multi-line flow collection
		default:
			fail()
		}
	}
	e := j
	for e > i && p.src[e-1] == ' ' {
		e--
	}
	if e == i {
		fail()
	}
	if p.build {
		s := p.str[i:e]
		return p.node(yaml.ScalarNode, 0, plainTag(s), s, p.line, p.column(i)), p.src[i:e], j
	}
	return nil, p.src[i:e], j
}
