package load

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// A Scenario is a population of weighted user behaviours. Build one with
// [ParseScenario] or [DefaultScenario]; it is immutable and safe to share.
type Scenario struct {
	// Name names the scenario in results.
	Name string
	// Behaviours are the weighted things a user does.
	Behaviours []*Behaviour
	// Thresholds are the pass criteria written in the scenario file.
	Thresholds []Threshold

	vars        map[string]string
	totalWeight int
	steps       int
}

// A Behaviour is one thing a user does: a sequence of steps with think time
// between them, chosen with probability Weight / (sum of all weights).
type Behaviour struct {
	Name   string
	Weight int
	// Think is the think time after each step, uniform in [Min, Max].
	Think ThinkTime
	Steps []*Step
}

// ThinkTime is a uniform range of pauses.
type ThinkTime struct {
	Min, Max time.Duration
}

// A Step is one request. Steps with the same Name share their figures: the
// name is the endpoint in the results.
type Step struct {
	Name   string
	Method string
	// Path is the path template, e.g. /api/products/{{ product_id }}.
	Path string

	line         int
	index        int // among all the scenario's steps
	endpoint     int // in Endpoints()
	path         *template
	body         *template
	headers      []header
	status       []int
	bodyContains []byte
	extract      []extractor
}

type header struct {
	name  string
	value *template
	fixed []string // the value of a header without expressions, shared
}

// ScenarioError is a problem in a scenario file, at a line.
type ScenarioError struct {
	Line int
	Msg  string
}

func (e *ScenarioError) Error() string {
	return fmt.Sprintf("scenario line %d: %s", e.Line, e.Msg)
}

//go:embed shop.yaml
var shopScenario []byte

// DefaultScenario returns the reference jewelry shop's user population:
// browse, search, view product, add to cart, checkout, and log in and view
// orders.
func DefaultScenario() *Scenario {
	s, err := ParseScenario(shopScenario)
	if err != nil {
		// The embedded file is tested; this cannot happen in a built binary.
		return &Scenario{Name: "invalid built-in scenario: " + err.Error()}
	}
	return s
}

// DefaultScenarioYAML returns the source of [DefaultScenario], a starting
// point for a scenario file.
func DefaultScenarioYAML() []byte { return slices.Clone(shopScenario) }

// ParseScenario parses a scenario file. Every error names the line it is
// about; several problems are joined. The format (see shop.yaml):
//
//	name: jewelry-shop
//	think: 500ms-1.5s            # default think time: "1s", "0", "MIN-MAX" or {min, max}
//	vars: {email_domain: x.test} # fixed template variables
//	thresholds: ["p95 < 2s"]     # see Threshold
//	behaviours:
//	  - name: view product
//	    weight: 20               # relative; default 1
//	    think: 1s                # overrides the default
//	    steps:
//	      - name: list products  # the endpoint in the results; default "METHOD path"
//	        method: GET          # default GET
//	        path: /api/products?page={{ randint 1 3 }}
//	        headers: {X-Trace: "{{ vu }}"}
//	        body: '{"id": {{ product_id }}}'  # JSON unless headers say otherwise
//	        status: [200, 304]   # expected; default any 2xx
//	        body_contains: products
//	        extract:             # one source each: json, header, cookie, regex
//	          product_id: {json: products.*.id}  # * picks a random element
//
// Paths, headers and bodies are templates: {{ name }} (a variable),
// {{ randint A B }}, {{ pick word "two words" }}, {{ vu }} (the user's
// number) and {{ iteration }}. A variable must be extracted by an earlier
// step of the same behaviour, or be one of vars.
func ParseScenario(data []byte) (*Scenario, error) {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ScenarioError{Line: 1, Msg: "the scenario is empty"}
		}
		return nil, yamlError(data, err)
	}
	p := &scenarioParser{}
	s := p.scenario(doc.Content[0])
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	names := s.Endpoints()
	for _, b := range s.Behaviours {
		for _, st := range b.Steps {
			st.index, st.endpoint = s.steps, slices.Index(names, st.Name)
			s.steps++
		}
	}
	return s, nil
}

// yamlError turns a YAML syntax error into a ScenarioError. yaml.v3 names the
// line for most errors but not for bad encodings, which are located here.
func yamlError(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var m []string
	if m = regexp.MustCompile(`^line (\d+): (?s)(.*)$`).FindStringSubmatch(msg); m == nil {
		m = regexp.MustCompile(`^unmarshal errors:\s*line (\d+): (?s)(.*)$`).FindStringSubmatch(msg)
	}
	if m != nil {
		line, _ := strconv.Atoi(m[1])
		if first := firstBadLine(data, line); first > line {
			return &ScenarioError{Line: first, Msg: fmt.Sprintf("%s (in the block from line %d)", m[2], line)}
		}
		return &ScenarioError{Line: line, Msg: m[2]}
	}
	return &ScenarioError{Line: badByteLine(data), Msg: msg}
}

// firstBadLine finds the first line at which the document stops being
// valid YAML, looking at most maxLookahead lines on from line from: yaml.v3
// names the line where the enclosing block starts, which can be above the
// mistake. It returns 0 when it cannot tell.
func firstBadLine(data []byte, from int) int {
	const maxLookahead = 50
	lines := bytes.SplitAfter(data, []byte("\n"))
	prefix := bytes.Join(lines[:min(max(from-1, 0), len(lines))], nil)
	for k := max(from, 1); k <= len(lines) && k < from+maxLookahead; k++ {
		prefix = append(prefix, lines[k-1]...)
		var n yaml.Node
		if err := yaml.Unmarshal(prefix, &n); err != nil {
			return k
		}
	}
	return 0
}

// badByteLine returns the line of the first byte YAML cannot read (invalid
// UTF-8 or a control character), or 1.
func badByteLine(data []byte) int {
	line := 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return line
		}
		if r == '\n' {
			line++
		} else if r < 0x20 && r != '\t' && r != '\r' || r == 0x7f {
			return line
		}
		i += size
	}
	return 1
}

type scenarioParser struct {
	errs []error
}

func (p *scenarioParser) errorf(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &ScenarioError{Line: n.Line, Msg: fmt.Sprintf(format, args...)})
}

// mapping walks a mapping node, calling field for every key in allowed and
// reporting any other key and any key given twice.
func (p *scenarioParser) mapping(n *yaml.Node, what string, allowed []string, field func(key string, v *yaml.Node)) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		switch {
		case !slices.Contains(allowed, k.Value):
			p.errorf(k, "unknown key %q in %s (allowed: %s)", k.Value, what, strings.Join(allowed, ", "))
		case seen[k.Value]:
			p.errorf(k, "key %q given twice in %s", k.Value, what)
		default:
			seen[k.Value] = true
			field(k.Value, v)
		}
	}
	return true
}

// resolve follows an alias to its anchor.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func (p *scenarioParser) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "%s must be a single value", what)
		return "", false
	}
	return n.Value, true
}

func (p *scenarioParser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := p.scalar(n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		p.errorf(n, "%s: %q is not a duration such as 500ms or 1.5s", what, s)
		return 0, false
	}
	return d, true
}

// think parses "1s", "500ms-1.5s" or {min: 500ms, max: 1.5s}.
func (p *scenarioParser) think(n *yaml.Node) (ThinkTime, bool) {
	if n.Kind == yaml.ScalarNode {
		lo, hi, ok := strings.Cut(n.Value, "-")
		if !ok {
			hi = lo
		}
		a, okA := p.duration(&yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(lo), Line: n.Line}, "think")
		b, okB := p.duration(&yaml.Node{Kind: yaml.ScalarNode, Value: strings.TrimSpace(hi), Line: n.Line}, "think")
		if !okA || !okB {
			return ThinkTime{}, false
		}
		return p.checkThink(n, ThinkTime{Min: a, Max: b})
	}
	var t ThinkTime
	ok := p.mapping(n, "think", []string{"min", "max"}, func(k string, v *yaml.Node) {
		d, _ := p.duration(v, "think "+k)
		if k == "min" {
			t.Min = d
		} else {
			t.Max = d
		}
	})
	if !ok {
		return ThinkTime{}, false
	}
	return p.checkThink(n, t)
}

func (p *scenarioParser) checkThink(n *yaml.Node, t ThinkTime) (ThinkTime, bool) {
	if t.Max < t.Min {
		p.errorf(n, "think time max %s is below min %s", t.Max, t.Min)
		return ThinkTime{}, false
	}
	return t, true
}

func (p *scenarioParser) scenario(root *yaml.Node) *Scenario {
	root = resolve(root)
	s := &Scenario{vars: map[string]string{}}
	var think ThinkTime
	var behaviours *yaml.Node
	ok := p.mapping(root, "the scenario", []string{"name", "think", "vars", "thresholds", "behaviours"}, func(k string, v *yaml.Node) {
		switch k {
		case "name":
			s.Name, _ = p.scalar(v, "name")
		case "think":
			think, _ = p.think(v)
		case "vars":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "vars must be a mapping of names to values")
			}
		case "thresholds":
			if v.Kind != yaml.SequenceNode {
				p.errorf(v, "thresholds must be a list such as [\"p95 < 2s\"]")
				return
			}
			for _, t := range v.Content {
				src, ok := p.scalar(resolve(t), "a threshold")
				if !ok {
					continue
				}
				th, err := ParseThreshold(src)
				if err != nil {
					p.errorf(t, "%v", err)
					continue
				}
				s.Thresholds = append(s.Thresholds, th)
			}
		case "behaviours":
			behaviours = v
		}
	})
	if !ok {
		return nil
	}
	// vars take any key, so walk them here rather than through mapping.
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "vars" {
			continue
		}
		vn := resolve(root.Content[i+1])
		for j := 0; vn.Kind == yaml.MappingNode && j+1 < len(vn.Content); j += 2 {
			k, v := vn.Content[j], resolve(vn.Content[j+1])
			if !validName(k.Value) {
				p.errorf(k, "var name %q must be letters, digits and underscores", k.Value)
				continue
			}
			if val, ok := p.scalar(v, "var "+k.Value); ok {
				s.vars[k.Value] = val
			}
		}
	}
	if behaviours == nil {
		p.errorf(root, "the scenario has no behaviours")
		return nil
	}
	if behaviours.Kind != yaml.SequenceNode || len(behaviours.Content) == 0 {
		p.errorf(behaviours, "behaviours must be a non-empty list")
		return nil
	}
	names := map[string]bool{}
	for _, bn := range behaviours.Content {
		b := p.behaviour(resolve(bn), think, s.vars)
		if b == nil {
			continue
		}
		if names[b.Name] {
			p.errorf(bn, "behaviour %q is defined twice", b.Name)
		}
		names[b.Name] = true
		s.Behaviours = append(s.Behaviours, b)
		s.totalWeight += b.Weight
	}
	if s.Name == "" {
		s.Name = "scenario"
	}
	return s
}

func (p *scenarioParser) behaviour(n *yaml.Node, think ThinkTime, vars map[string]string) *Behaviour {
	b := &Behaviour{Weight: 1, Think: think}
	var steps *yaml.Node
	ok := p.mapping(n, "a behaviour", []string{"name", "weight", "think", "steps"}, func(k string, v *yaml.Node) {
		switch k {
		case "name":
			b.Name, _ = p.scalar(v, "name")
		case "weight":
			s, ok := p.scalar(v, "weight")
			w, err := strconv.Atoi(s)
			if ok && (err != nil || w < 1 || w > 1_000_000) {
				p.errorf(v, "weight %q must be an integer from 1 to 1000000", s)
				return
			}
			b.Weight = w
		case "think":
			b.Think, _ = p.think(v)
		case "steps":
			steps = v
		}
	})
	if !ok {
		return nil
	}
	if b.Name == "" {
		p.errorf(n, "a behaviour needs a name")
		return nil
	}
	if steps == nil || steps.Kind != yaml.SequenceNode || len(steps.Content) == 0 {
		p.errorf(n, "behaviour %q needs a non-empty list of steps", b.Name)
		return nil
	}
	defined := map[string]bool{}
	for k := range vars {
		defined[k] = true
	}
	for _, sn := range steps.Content {
		if st := p.step(resolve(sn), b.Name, defined); st != nil {
			b.Steps = append(b.Steps, st)
		}
	}
	return b
}

var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

func (p *scenarioParser) step(n *yaml.Node, behaviour string, defined map[string]bool) *Step {
	st := &Step{Method: http.MethodGet, line: n.Line}
	tmpl := func(v *yaml.Node, what string) *template {
		s, ok := p.scalar(v, what)
		if !ok {
			return nil
		}
		t, err := compileTemplate(s)
		if err != nil {
			p.errorf(v, "%s: %v", what, err)
			return nil
		}
		for _, name := range t.vars() {
			if !defined[name] {
				p.errorf(v, "%s uses {{ %s }}, which no earlier step of behaviour %q extracts and no var defines", what, name, behaviour)
			}
		}
		return t
	}
	var extract *yaml.Node
	ok := p.mapping(n, "a step", []string{"name", "method", "path", "headers", "body", "status", "body_contains", "extract"}, func(k string, v *yaml.Node) {
		switch k {
		case "name":
			st.Name, _ = p.scalar(v, "name")
		case "method":
			m, _ := p.scalar(v, "method")
			st.Method = strings.ToUpper(m)
			if !slices.Contains(httpMethods, st.Method) {
				p.errorf(v, "method %q is not one of %s", m, strings.Join(httpMethods, ", "))
			}
		case "path":
			st.Path, _ = p.scalar(v, "path")
			st.path = tmpl(v, "path")
			if st.path != nil && !strings.HasPrefix(st.Path, "/") {
				p.errorf(v, "path %q must start with /", st.Path)
			}
		case "headers":
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "headers must be a mapping of names to values")
			}
			for i := 0; v.Kind == yaml.MappingNode && i+1 < len(v.Content); i += 2 {
				name := v.Content[i].Value
				if name == "" || strings.ContainsAny(name, " :\r\n") {
					p.errorf(v.Content[i], "header name %q is not valid", name)
					continue
				}
				if t := tmpl(resolve(v.Content[i+1]), "header "+name); t != nil {
					h := header{name: http.CanonicalHeaderKey(name), value: t}
					if t.static() {
						h.fixed = []string{t.src}
					}
					st.headers = append(st.headers, h)
				}
			}
		case "body":
			st.body = tmpl(v, "body")
		case "status":
			items := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				items = v.Content
			}
			for _, it := range items {
				s, ok := p.scalar(resolve(it), "status")
				c, err := strconv.Atoi(s)
				if ok && (err != nil || c < 100 || c > 599) {
					p.errorf(it, "status %q is not an HTTP status code", s)
					continue
				}
				st.status = append(st.status, c)
			}
		case "body_contains":
			s, _ := p.scalar(v, "body_contains")
			st.bodyContains = []byte(s)
		case "extract":
			extract = v
		}
	})
	if !ok {
		return nil
	}
	if st.Name == "" {
		st.Name = st.Method + " " + st.Path
	}
	if st.Path == "" {
		p.errorf(n, "step %q needs a path", st.Name)
	}
	if extract != nil {
		p.extractors(extract, st)
		for _, e := range st.extract {
			defined[e.name] = true
		}
	}
	return st
}

func (p *scenarioParser) extractors(n *yaml.Node, st *Step) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "extract must map variable names to sources, e.g. product_id: {json: products.*.id}")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if !validName(k.Value) {
			p.errorf(k, "variable name %q must be letters, digits and underscores", k.Value)
			continue
		}
		e := extractor{name: k.Value}
		sources := 0
		p.mapping(v, "extract "+k.Value, []string{"json", "header", "cookie", "regex"}, func(src string, sv *yaml.Node) {
			sources++
			s, ok := p.scalar(sv, src)
			if !ok {
				return
			}
			var err error
			switch src {
			case "json":
				e.json, err = parseJSONPath(s)
			case "header":
				e.header = http.CanonicalHeaderKey(s)
			case "cookie":
				e.cookie = s
			case "regex":
				e.regex, err = regexp.Compile(s)
			}
			if err == nil && s == "" {
				err = fmt.Errorf("empty %s", src)
			}
			if err != nil {
				p.errorf(sv, "extract %s: %v", k.Value, err)
			}
		})
		if v.Kind == yaml.MappingNode && sources != 1 {
			p.errorf(v, "extract %s needs exactly one of json, header, cookie, regex", k.Value)
			continue
		}
		st.extract = append(st.extract, e)
	}
}

// pick chooses a behaviour with probability proportional to its weight.
func (s *Scenario) pick(rng *rand.Rand) *Behaviour {
	n := rng.IntN(s.totalWeight)
	for _, b := range s.Behaviours {
		if n < b.Weight {
			return b
		}
		n -= b.Weight
	}
	return s.Behaviours[len(s.Behaviours)-1]
}

// Endpoints returns the step names, sorted, each once.
func (s *Scenario) Endpoints() []string {
	var names []string
	for _, b := range s.Behaviours {
		for _, st := range b.Steps {
			names = append(names, st.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// expectedStatus reports whether code is what the step expects: its listed
// statuses, or any 2xx when none is listed.
func (st *Step) expectedStatus(code int) bool {
	if len(st.status) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(st.status, code)
}
