package controlplane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckAssets(t *testing.T) {
	tests := []struct {
		name    string
		present []string
		wantErr string // substring of the error; empty for none
	}{
		{"none built", nil, "kube-apiserver not found"},
		{"kwok missing", []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "controller-gen"}, "kwok not found"},
		{"all built", assetBinaries(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LAB_CACHE_DIR", t.TempDir())
			dir, err := AssetsDir()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, b := range tt.present {
				if err := os.WriteFile(filepath.Join(dir, b), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, err := checkAssets()
			if tt.wantErr == "" {
				if err != nil || got != dir {
					t.Fatalf("checkAssets() = %q, %v; want %q, nil", got, err, dir)
				}
				return
			}
			if !errors.Is(err, errMissingAssets) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), buildCommand) {
				t.Fatalf("checkAssets() error = %v; want errMissingAssets naming %q and %q", err, tt.wantErr, buildCommand)
			}
		})
	}
}

func TestNamespacePrefix(t *testing.T) {
	tests := []struct {
		test, want string
	}{
		{"TestDeployment", "testdeployment-"},
		{"TestChaos/invalid_action", "testchaos-invalid-action-"},
		{"Test" + strings.Repeat("x", 60), "test" + strings.Repeat("x", 36) + "-"},
		{"/", "test-"},
	}
	for _, tt := range tests {
		t.Run(tt.test, func(t *testing.T) {
			if got := namespacePrefix(tt.test); got != tt.want {
				t.Errorf("namespacePrefix(%q) = %q, want %q", tt.test, got, tt.want)
			}
		})
	}
}

func TestPostgresqlCRDDecodes(t *testing.T) {
	crd, err := postgresqlCRD()
	if err != nil {
		t.Fatal(err)
	}
	if crd.Name != "postgresqls.acid.zalan.do" || crd.Spec.Names.Kind != "postgresql" {
		t.Errorf("CRD %s for kind %s, want postgresqls.acid.zalan.do for postgresql", crd.Name, crd.Spec.Names.Kind)
	}
}
