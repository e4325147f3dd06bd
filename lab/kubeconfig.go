package lab

import (
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
)

// KubeconfigPath is where lab keeps the cluster's kubeconfig: the configured
// path, or <user config dir>/lab/<cluster name>/kubeconfig.
func (c Config) KubeconfigPath() (string, error) {
	if c.Cluster.Kubeconfig != "" {
		return c.Cluster.Kubeconfig, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user config directory for the kubeconfig (set cluster.kubeconfig): %w", err)
	}
	return filepath.Join(dir, "lab", c.Cluster.Name, "kubeconfig"), nil
}

// writeKubeconfig writes the kubeconfig readable by its owner only, replacing
// the file atomically so that a reader never sees half of it.
func writeKubeconfig(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory for kubeconfig %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kubeconfig-*")
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// mergeIntoDefaultKubeconfig adds the clusters, users and contexts of data to
// the user's default kubeconfig ($KUBECONFIG's first file or ~/.kube/config),
// replacing entries of the same name and leaving the current context alone.
func mergeIntoDefaultKubeconfig(data []byte) (string, error) {
	add, err := clientcmd.Load(data)
	if err != nil {
		return "", fmt.Errorf("read the lab kubeconfig: %w", err)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	path := rules.GetDefaultFilename()
	cfg, err := clientcmd.LoadFromFile(path)
	if os.IsNotExist(err) {
		cfg, err = clientcmd.Load(nil)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	for k, v := range add.Clusters {
		cfg.Clusters[k] = v
	}
	for k, v := range add.AuthInfos {
		cfg.AuthInfos[k] = v
	}
	for k, v := range add.Contexts {
		cfg.Contexts[k] = v
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// removeKubeconfig removes the lab's kubeconfig file and, when it is lab's own
// directory (ownDir), that directory if it is left empty. A missing file is fine.
func removeKubeconfig(path string, ownDir bool) (bool, error) {
	err := os.Remove(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("remove kubeconfig %s: %w", path, err)
	}
	if ownDir {
		_ = os.Remove(filepath.Dir(path)) // only succeeds when empty
	}
	return true, nil
}
