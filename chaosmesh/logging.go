package chaosmesh

import (
	"log/slog"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// SetupLibraries routes controller-runtime's process-wide logger, which
// Chaos Mesh's validation code logs through, into log. cmd calls it once at
// start-up; without it controller-runtime complains with a stack trace.
func SetupLibraries(log *slog.Logger) {
	ctrllog.SetLogger(logr.FromSlogHandler(log.With("lib", "controller-runtime").Handler()))
}
