package load

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// A template is a path, header or body with {{ ... }} expressions, compiled
// once when the scenario is parsed so that rendering a request costs no
// parsing. Expressions:
//
//	{{ name }}           a value extracted by an earlier step or a scenario var
//	{{ randint 1 20 }}   a uniformly random integer in [1, 20]
//	{{ pick a b "c d" }} one of the words, uniformly
//	{{ vu }}             the virtual user's number (0-based)
//	{{ iteration }}      the user's behaviour iteration (0-based)
type template struct {
	src   string
	parts []tmplPart
}

type partKind uint8

const (
	partLiteral partKind = iota
	partVar
	partRandInt
	partPick
	partVU
	partIteration
)

type tmplPart struct {
	kind   partKind
	text   string // literal text or variable name
	lo, hi int64
	words  []string
}

// tmplEnv is what a template reads when it is rendered.
type tmplEnv struct {
	vars      map[string]string
	rng       *rand.Rand
	vu        int
	iteration int
}

// templateError reports a malformed template; Offset is the byte offset of
// the expression in the template source.
type templateError struct {
	Offset int
	Msg    string
}

func (e *templateError) Error() string {
	return fmt.Sprintf("template column %d: %s", e.Offset+1, e.Msg)
}

// compileTemplate parses src. A template without expressions renders as src.
func compileTemplate(src string) (*template, error) {
	t := &template{src: src}
	rest, off := src, 0
	for rest != "" {
		open := strings.Index(rest, "{{")
		if open < 0 {
			t.parts = append(t.parts, tmplPart{kind: partLiteral, text: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, tmplPart{kind: partLiteral, text: rest[:open]})
		}
		end := strings.Index(rest[open+2:], "}}")
		if end < 0 {
			return nil, &templateError{Offset: off + open, Msg: `"{{" is not closed by "}}"`}
		}
		expr := rest[open+2 : open+2+end]
		p, err := compileExpr(expr)
		if err != nil {
			return nil, &templateError{Offset: off + open, Msg: fmt.Sprintf("{{%s}}: %v", expr, err)}
		}
		t.parts = append(t.parts, p)
		consumed := open + 2 + end + 2
		rest, off = rest[consumed:], off+consumed
	}
	return t, nil
}

func compileExpr(expr string) (tmplPart, error) {
	words, err := splitWords(expr)
	if err != nil {
		return tmplPart{}, err
	}
	if len(words) == 0 {
		return tmplPart{}, fmt.Errorf("empty expression")
	}
	name, args := words[0], words[1:]
	switch name {
	case "randint":
		if len(args) != 2 {
			return tmplPart{}, fmt.Errorf("randint takes 2 integers, got %d arguments", len(args))
		}
		lo, err1 := strconv.ParseInt(args[0], 10, 64)
		hi, err2 := strconv.ParseInt(args[1], 10, 64)
		if err1 != nil || err2 != nil {
			return tmplPart{}, fmt.Errorf("randint takes 2 integers, got %q and %q", args[0], args[1])
		}
		if hi < lo {
			return tmplPart{}, fmt.Errorf("randint range %d..%d is empty", lo, hi)
		}
		return tmplPart{kind: partRandInt, lo: lo, hi: hi}, nil
	case "pick":
		if len(args) == 0 {
			return tmplPart{}, fmt.Errorf("pick needs at least one word")
		}
		return tmplPart{kind: partPick, words: args}, nil
	case "vu", "iteration":
		if len(args) != 0 {
			return tmplPart{}, fmt.Errorf("%s takes no arguments", name)
		}
		if name == "vu" {
			return tmplPart{kind: partVU}, nil
		}
		return tmplPart{kind: partIteration}, nil
	}
	if !validName(name) {
		return tmplPart{}, fmt.Errorf("%q is neither a function (randint, pick, vu, iteration) nor a variable name", name)
	}
	if len(args) != 0 {
		return tmplPart{}, fmt.Errorf("variable %q takes no arguments (unknown function?)", name)
	}
	return tmplPart{kind: partVar, text: name}, nil
}

// splitWords splits on blanks; a double-quoted word may contain blanks and
// the escapes \" and \\.
func splitWords(s string) ([]string, error) {
	var words []string
	for i := 0; i < len(s); {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		case '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated quoted word")
			}
			words = append(words, b.String())
			i = j + 1
		default:
			j := i
			for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '\n' && s[j] != '\r' {
				j++
			}
			words = append(words, s[i:j])
			i = j
		}
	}
	return words, nil
}

// validName reports whether s is a variable name: a letter or underscore,
// then letters, digits or underscores.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !letter && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// static reports whether the template renders to the same text every time.
func (t *template) static() bool {
	for _, p := range t.parts {
		if p.kind != partLiteral {
			return false
		}
	}
	return true
}

// vars returns the variable names the template reads.
func (t *template) vars() []string {
	var names []string
	for _, p := range t.parts {
		if p.kind == partVar {
			names = append(names, p.text)
		}
	}
	return names
}

// appendTo renders the template onto dst. A variable that is not set renders
// as an error: parsing checks that every variable is set by an earlier step,
// so this only happens when that step's extraction failed.
func (t *template) appendTo(dst []byte, env *tmplEnv) ([]byte, error) {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case partLiteral:
			dst = append(dst, p.text...)
		case partVar:
			v, ok := env.vars[p.text]
			if !ok {
				return dst, fmt.Errorf("variable %q is not set", p.text)
			}
			dst = append(dst, v...)
		case partRandInt:
			span := uint64(p.hi) - uint64(p.lo) // hi >= lo, so this is the true width
			n := env.rng.Uint64()
			if span != 1<<64-1 {
				n = env.rng.Uint64N(span + 1)
			}
			dst = strconv.AppendInt(dst, int64(uint64(p.lo)+n), 10)
		case partPick:
			dst = append(dst, p.words[env.rng.IntN(len(p.words))]...)
		case partVU:
			dst = strconv.AppendInt(dst, int64(env.vu), 10)
		case partIteration:
			dst = strconv.AppendInt(dst, int64(env.iteration), 10)
		}
	}
	return dst, nil
}
