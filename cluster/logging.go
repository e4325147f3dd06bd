package cluster

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	k3dlog "github.com/k3d-io/k3d/v5/pkg/logger"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	"github.com/k3d-io/k3d/v5/version"
	"github.com/sirupsen/logrus"
	"k8s.io/klog/v2"
)

// SetupLibraries tames the process-wide state of the libraries this package
// drives, once at start-up from cmd: k3d's global logrus logger and client-go's
// klog are routed into log, and k3d's helper images are pinned to
// helperImageTag instead of k3d's build-time version ("latest" when used as a
// library). k3d takes the tools image (which it starts to import images into
// the nodes) only from its environment variable, so toolsImage is set there;
// the load balancer image is set in the cluster's configuration (Spec).
func SetupLibraries(log *slog.Logger, helperImageTag, toolsImage string) {
	l := k3dlog.Log()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.TraceLevel)
	l.ReplaceHooks(logrus.LevelHooks{})
	l.AddHook(&slogHook{log: log.With("lib", "k3d")})
	klog.SetSlogLogger(log.With("lib", "client-go"))
	version.HelperVersionOverride = helperImageTag
	if toolsImage != "" && os.Getenv(k3d.K3dEnvImageTools) != toolsImage {
		if prev := os.Getenv(k3d.K3dEnvImageTools); prev != "" {
			log.Debug("the configured tools image replaces the environment's", "env", k3d.K3dEnvImageTools, "was", prev, "now", toolsImage)
		}
		_ = os.Setenv(k3d.K3dEnvImageTools, toolsImage)
	}
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
