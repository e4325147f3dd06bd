package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
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
			golden := filepath.Join("testdata", "help-"+mode+".golden")
			if *update {
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("%s --help (-golden +got):\n%s", mode, diff)
			}
		})
	}
}
