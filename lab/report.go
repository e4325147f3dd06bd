package lab

import (
	"fmt"
	"io"

	"github.com/jewelry-shop/lab/reports"
)

// RenderReport re-renders the Markdown report from the JSON file a validation
// wrote, e.g. after a newer lab changed the layout. The JSON is checked
// against its schema first, so a hand-edited verdict is refused.
func RenderReport(jsonPath string, w io.Writer) error {
	run, err := reports.Load(jsonPath)
	if err != nil {
		return fmt.Errorf("read report %s: %w", jsonPath, err)
	}
	if err := reports.WriteMarkdown(w, run); err != nil {
		return fmt.Errorf("render report %s: %w", jsonPath, err)
	}
	return nil
}
