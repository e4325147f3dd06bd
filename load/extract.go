package load

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// An extractor takes one value out of a response and stores it in the user's
// variables under name. Exactly one source is set.
type extractor struct {
	name   string
	json   []pathElem     // JSON path, e.g. products.*.id
	header string         // response header
	cookie string         // cookie set by the response (or already in the jar)
	regex  *regexp.Regexp // first submatch (or whole match) in the body
}

// pathElem is one element of a JSON path: an object key, an array index, or
// "*", a random element of an array.
type pathElem struct {
	key   string
	index int
	kind  uint8
}

const (
	elemKey uint8 = iota
	elemIndex
	elemAny
)

// parseJSONPath parses a dotted path such as "order_id", "products.0.id",
// "products.*.id" or "$.products[2].id".
func parseJSONPath(s string) ([]pathElem, error) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "$"), ".")
	if s == "" {
		return nil, fmt.Errorf("empty JSON path")
	}
	s = strings.NewReplacer("[", ".", "]", "").Replace(s)
	var path []pathElem
	for _, part := range strings.Split(s, ".") {
		switch part {
		case "":
			return nil, fmt.Errorf("JSON path %q has an empty element", s)
		case "*":
			path = append(path, pathElem{kind: elemAny})
		default:
			if n, err := strconv.Atoi(part); err == nil && n >= 0 {
				path = append(path, pathElem{kind: elemIndex, index: n})
			} else {
				path = append(path, pathElem{kind: elemKey, key: part})
			}
		}
	}
	return path, nil
}

// response is what an extractor sees of a response besides its body.
type response struct {
	header  func(name string) string
	cookies []*http.Cookie // set by the response
	url     func() *url.URL
}

// extract returns the value, or an error saying why there is none.
func (e *extractor) extract(resp *response, body []byte, jar http.CookieJar, rng *rand.Rand) (string, error) {
	switch {
	case e.header != "":
		v := resp.header(e.header)
		if v == "" {
			return "", fmt.Errorf("header %q is missing", e.header)
		}
		return v, nil
	case e.cookie != "":
		for _, c := range resp.cookies {
			if c.Name == e.cookie && c.Value != "" {
				return c.Value, nil
			}
		}
		if jar != nil {
			for _, c := range jar.Cookies(resp.url()) {
				if c.Name == e.cookie {
					return c.Value, nil
				}
			}
		}
		return "", fmt.Errorf("cookie %q was not set", e.cookie)
	case e.regex != nil:
		m := e.regex.FindSubmatch(body)
		if m == nil {
			return "", fmt.Errorf("regex %q does not match the body", e.regex)
		}
		if len(m) > 1 {
			return string(m[1]), nil
		}
		return string(m[0]), nil
	default:
		return extractJSON(body, e.json, rng)
	}
}

func extractJSON(body []byte, path []pathElem, rng *rand.Rand) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("body is not JSON: %w", err)
	}
	for i, el := range path {
		switch el.kind {
		case elemKey:
			obj, ok := v.(map[string]any)
			if !ok {
				return "", fmt.Errorf("JSON path element %d (%q): not an object", i+1, el.key)
			}
			if v, ok = obj[el.key]; !ok {
				return "", fmt.Errorf("JSON path element %d: no key %q", i+1, el.key)
			}
		default:
			arr, ok := v.([]any)
			if !ok {
				return "", fmt.Errorf("JSON path element %d: not an array", i+1)
			}
			n := el.index
			if el.kind == elemAny {
				if len(arr) == 0 {
					return "", fmt.Errorf("JSON path element %d (*): empty array", i+1)
				}
				n = rng.IntN(len(arr))
			}
			if n >= len(arr) {
				return "", fmt.Errorf("JSON path element %d: index %d out of range (length %d)", i+1, n, len(arr))
			}
			v = arr[n]
		}
	}
	switch x := v.(type) {
	case nil:
		return "", fmt.Errorf("JSON value is null")
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", fmt.Errorf("encode JSON value: %w", err)
		}
		return string(b), nil
	}
}
