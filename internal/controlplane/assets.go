package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The pinned versions of the test control plane and of the real nodes'
// add-ons. They must match the variables at the top of hack/test-assets.sh
// (TestAssetsScriptAgrees checks it) and the requirements in hack/tools,
// hack/coredns, hack/metrics-server and hack/local-path-provisioner's go.mod.
const (
	kubernetesVersion      = "v1.37.2"
	etcdVersion            = "v3.7.0"
	kwokVersion            = "v0.8.0"
	controllerToolsVersion = "v0.23.0"
	corednsVersion         = "v1.15.0"
	metricsServerVersion   = "v0.8.0"
	localPathVersion       = "v0.0.30"
)

// buildCommand is what builds the assets; it is named in every message about a
// missing asset.
const buildCommand = "make test-assets (or: hack/test-assets.sh)"

// assetBinaries returns the executables hack/test-assets.sh puts in the
// asset directory.
func assetBinaries() []string {
	return []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok", "controller-gen", "kubelet", "kube-proxy", "kubectl", "coredns", "metrics-server", "local-path-provisioner"}
}

// assetsKey names the asset directory after every pinned version, exactly as
// hack/test-assets.sh does.
func assetsKey() string {
	return fmt.Sprintf("k8s-%s-etcd-%s-kwok-%s-cg-%s-coredns-%s-ms-%s-lpp-%s", kubernetesVersion, etcdVersion, kwokVersion, controllerToolsVersion, corednsVersion, metricsServerVersion, localPathVersion)
}

// CacheDir is the lab cache root, shared by every script and test helper that
// caches a build: ${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}.
func CacheDir() (string, error) {
	if d := os.Getenv("LAB_CACHE_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "lab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "lab"), nil
}

// AssetsDir returns the directory that hack/test-assets.sh builds the control
// plane's binaries into.
func AssetsDir() (string, error) {
	c, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "test-assets", assetsKey()), nil
}

// errMissingAssets says that the asset directory lacks a binary.
var errMissingAssets = errors.New("test control plane binaries not built")

// checkAssets returns the asset directory when every binary is in it, or an
// error wrapping errMissingAssets that names the missing one and the command
// that builds it.
func checkAssets() (string, error) {
	dir, err := AssetsDir()
	if err != nil {
		return "", err
	}
	for _, b := range assetBinaries() {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: %s not found in %s; build it with %s", errMissingAssets, b, dir, buildCommand)
		}
	}
	return dir, nil
}
