// Command lab brings up a local copy of the jewelry-shop production stack on
// k3d and proves, by measurement, that it survives load and failure.
package main

import (
	"os"

	"github.com/jewelry-shop/lab/cmd/lab/app"
)

// Set by the linker (see the Makefile's build target).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	os.Exit(app.Main(os.Args[1:], app.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, app.Build{Version: version, Commit: commit}))
}
