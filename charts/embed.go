package charts

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"sigs.k8s.io/yaml"
)

// embedded holds the jewelry-shop chart and the profile values overlays. The
// all: prefix keeps files whose names start with "_" (the template helpers)
// and ".helmignore".
//
//go:embed all:jewelry-shop profiles
var embedded embed.FS

// jewelryShopDir is the embedded chart's directory.
const jewelryShopDir = "jewelry-shop"

// LoadJewelryShop returns the embedded jewelry-shop chart.
func LoadJewelryShop() (*chart.Chart, error) {
	var files []*loader.BufferedFile
	err := fs.WalkDir(embedded, jewelryShopDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: strings.TrimPrefix(p, jewelryShopDir+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the embedded jewelry-shop chart: %w", err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load the embedded jewelry-shop chart: %w", err)
	}
	return c, nil
}

// Profiles are the names of the values overlays of the jewelry-shop chart.
func Profiles() []string {
	entries, err := embedded.ReadDir("profiles")
	if err != nil {
		return nil // the directory is embedded; it cannot be missing
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, name)
		}
	}
	return names
}

// ProfileValues returns the jewelry-shop values overlay of a profile
// ("quick", "full"), to be merged over the chart's defaults.
func ProfileValues(profile string) (map[string]any, error) {
	data, err := embedded.ReadFile(path.Join("profiles", profile+".yaml"))
	if err != nil {
		return nil, fmt.Errorf("profile %q has no values overlay (known: %s)", profile, strings.Join(Profiles(), ", "))
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, fmt.Errorf("parse the values of profile %s: %w", profile, err)
	}
	return vals, nil
}

// mergeValues returns base with over merged on top, recursively, the way
// Helm merges several values files; neither argument is changed.
func mergeValues(base, over map[string]any) map[string]any {
	out := copyValues(base)
	for k, v := range over {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// copyValues deep-copies a values tree.
func copyValues(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		if m, ok := x.(map[string]any); ok {
			x = copyValues(m)
		}
		out[k] = x
	}
	return out
}
