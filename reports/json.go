package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// document is the JSON document: the schema and the derived verdict and
// exit code first, then the run's fields.
type document struct {
	Schema   string  `json:"schema"`
	Verdict  Verdict `json:"verdict"`
	ExitCode int     `json:"exit_code"`
	*runFields
}

// runFields has Run's fields without its methods.
type runFields Run

// WriteJSON writes the run as the SchemaV1 JSON document, indented, with
// fields in a fixed order and map keys sorted.
func WriteJSON(w io.Writer, r *Run) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	doc := document{Schema: SchemaV1, Verdict: r.Verdict(), ExitCode: r.ExitCode(), runFields: (*runFields)(r)}
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	return nil
}

// ErrSchema is returned by ReadJSON for a document of another schema.
var ErrSchema = errors.New("unsupported report schema")

// ReadJSON reads a document written by WriteJSON. It rejects another schema,
// unknown fields, and a verdict or exit code that does not follow from the
// requirements (a hand-edited report).
func ReadJSON(rd io.Reader) (*Run, error) {
	var r Run
	doc := document{runFields: (*runFields)(&r)}
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode report: %w", err)
	}
	if doc.Schema != SchemaV1 {
		return nil, fmt.Errorf("decode report: %w %q, want %q", ErrSchema, doc.Schema, SchemaV1)
	}
	if v := r.Verdict(); doc.Verdict != v || doc.ExitCode != r.ExitCode() {
		return nil, fmt.Errorf("decode report: verdict %q (exit code %d) does not follow from the requirements, which give %q (exit code %d)",
			doc.Verdict, doc.ExitCode, v, r.ExitCode())
	}
	for i, q := range r.Requirements {
		if !q.Status.Valid() {
			return nil, fmt.Errorf("decode report: requirement %d (%s): unknown status %q", i, q.ID, q.Status)
		}
	}
	return &r, nil
}

// Load reads the JSON report at path.
func Load(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	r, err := ReadJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}
