package controlplane

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// chaosMeshAPI is the Go module whose types define the Chaos Mesh CRDs, and
// chaosMeshPackage the package of its v1alpha1 kinds.
const (
	chaosMeshAPI     = "github.com/chaos-mesh/chaos-mesh/api"
	chaosMeshPackage = chaosMeshAPI + "/v1alpha1"
)

// postgresqlCRDYAML is the hand-written CRD for the Zalando postgresql kind;
// the file says where its schema comes from.
//
//go:embed crds/zalando-postgresql.yaml
var postgresqlCRDYAML []byte

// postgresqlCRD decodes the Zalando postgresql CRD.
func postgresqlCRD() (*apiextensionsv1.CustomResourceDefinition, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(postgresqlCRDYAML, &crd); err != nil {
		return nil, fmt.Errorf("decode the postgresql CRD: %w", err)
	}
	return &crd, nil
}

// chaosMeshCRDs returns a directory holding the Chaos Mesh CRDs, generated
// with controller-gen from the chaos-mesh api module that the main module
// requires. They are generated once into the lab cache, in a directory keyed
// by the module's and controller-gen's versions, and never committed.
func chaosMeshCRDs(ctx context.Context, controllerGen string) (string, error) {
	version, err := goCommand(ctx, "list", "-m", "-f", "{{.Version}}", chaosMeshAPI)
	if err != nil {
		return "", fmt.Errorf("find the version of %s: %w", chaosMeshAPI, err)
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "chaos-mesh-crds", version+"-cg-"+controllerToolsVersion)
	if crds, _ := filepath.Glob(filepath.Join(dir, "*.yaml")); len(crds) > 0 {
		return dir, nil
	}

	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("make the CRD cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".generate-")
	if err != nil {
		return "", fmt.Errorf("make the CRD cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	// Run in the test's package directory: controller-gen loads the package
	// with the main module's requirements (the api module's own go.mod asks
	// for versions that do not compile together any more).
	cmd := exec.CommandContext(ctx, controllerGen,
		"crd:crdVersions=v1,allowDangerousTypes=true,maxDescLen=0",
		"paths="+chaosMeshPackage,
		"output:crd:dir="+tmp,
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("generate the Chaos Mesh CRDs with controller-gen: %w: %s", err, strings.TrimSpace(out.String()))
	}
	if crds, _ := filepath.Glob(filepath.Join(tmp, "*.yaml")); len(crds) == 0 {
		return "", fmt.Errorf("controller-gen wrote no Chaos Mesh CRD: %s", strings.TrimSpace(out.String()))
	}
	// Another test binary may have finished first: its result is as good.
	if err := os.Rename(tmp, dir); err != nil {
		if crds, _ := filepath.Glob(filepath.Join(dir, "*.yaml")); len(crds) > 0 {
			return dir, nil
		}
		return "", fmt.Errorf("store the Chaos Mesh CRDs: %w", err)
	}
	return dir, nil
}

// goCommand runs the go command in the working directory and returns its
// trimmed standard output.
func goCommand(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
