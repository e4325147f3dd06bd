package cluster

import (
	"context"
	"io"
	"log/slog"
	"strings"

	k3dlog "github.com/k3d-io/k3d/v5/pkg/logger"
	"github.com/k3d-io/k3d/v5/version"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

// SetupLibraries tames the process-wide state of the libraries this package
// drives, once at start-up from cmd: k3d's global logrus logger and client-go's
// klog are routed into log, and k3d's helper images are pinned to
// helperImageTag instead of k3d's build-time version ("latest" when used as a
// library).
func SetupLibraries(log *slog.Logger, helperImageTag string) {
	l := k3dlog.Log()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.TraceLevel)
	l.ReplaceHooks(logrus.LevelHooks{})
	l.AddHook(&slogHook{log: log.With("lib", "k3d")})
	klog.SetSlogLogger(log.With("lib", "client-go"))
	version.HelperVersionOverride = helperImageTag
}

// slogHook forwards k3d's logrus entries to slog, where the level decides what
// is shown: k3d's Info is lab's Debug, since lab reports progress itself.
type slogHook struct{ log *slog.Logger }

func (h *slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *slogHook) Fire(e *logrus.Entry) error {
	lvl := slog.LevelDebug
	switch {
	case e.Level <= logrus.ErrorLevel:
		lvl = slog.LevelWarn // k3d logs errors it also returns; lab reports those once
	case e.Level == logrus.WarnLevel:
		lvl = slog.LevelWarn
	case e.Level >= logrus.TraceLevel:
		lvl = slog.LevelDebug - 4
	}
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	h.log.Log(ctx, lvl, strings.TrimSpace(e.Message))
	return nil
}
