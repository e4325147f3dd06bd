package main

import (
	"bytes"
	"flag"
	"path/filepath"
	"testing"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestHelpGolden pins the --help output of the modes whose defaults do
// not depend on the machine: it is the documentation of the env vars.
func TestHelpGolden(t *testing.T) {
	for _, mode := range []string{"web", "probe"} {
		t.Run(mode, func(t *testing.T) {
			var out bytes.Buffer
			if code := run(t.Context(), []string{mode, "--help"}, &out, &out); code != 0 {
				t.Fatalf("%s --help: exit code %d", mode, code)
			}
			golden.Check(t, filepath.Join("testdata", "help-"+mode+".golden"), out.Bytes(), *update)
		})
	}
}
