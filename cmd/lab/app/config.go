package app

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/lab"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// envPrefix is the prefix of the environment variables that set
// configuration keys: cluster.ingressPort is LAB_CLUSTER_INGRESSPORT.
const envPrefix = "LAB"

// defaultConfigFile is read when --config is not given and it exists.
const defaultConfigFile = "lab.yaml"

// configSource says where the effective configuration came from.
type configSource struct {
	file string // "" when no file was read, "-" for standard input
}

// loadConfig computes the effective configuration: the defaults, then the
// file (--config, or ./lab.yaml when present; "-" reads standard input), then
// LAB_* environment variables, then the flags bound to keys. Unknown keys in
// the file or the environment are rejected, and every invalid value is
// reported at once.
func loadConfig(path string, stdin io.Reader, environ []string, flags map[string]*pflag.Flag) (lab.Config, configSource, error) {
	v := viper.New()
	cfg := lab.DefaultConfig()
	keys := configKeys(cfg)
	for _, k := range keys {
		v.SetDefault(k.key, k.value)
	}
	src := configSource{}
	v.SetConfigType("yaml")
	switch {
	case path == "-":
		if err := v.ReadConfig(stdin); err != nil {
			return cfg, src, usagef("read configuration from standard input: %w", err)
		}
		src.file = "-"
	case path != "":
		if _, err := os.Stat(path); err != nil {
			return cfg, src, usagef("configuration file %s: %w\n  fix: pass an existing file with --config, or leave --config out to use the defaults", path, err)
		}
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return cfg, src, usagef("read configuration file %s: %w", path, err)
		}
		src.file = path
	default:
		if _, err := os.Stat(defaultConfigFile); err == nil {
			v.SetConfigFile(defaultConfigFile)
			if err := v.ReadInConfig(); err != nil {
				return cfg, src, usagef("read configuration file %s: %w", defaultConfigFile, err)
			}
			src.file = defaultConfigFile
		}
	}

	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	var problems []string
	problems = append(problems, unknownEnv(environ, keys)...)

	for key, f := range flags {
		if err := v.BindPFlag(key, f); err != nil {
			return cfg, src, fmt.Errorf("bind flag --%s to %s: %w", f.Name, key, err)
		}
	}

	if err := v.UnmarshalExact(&cfg); err != nil {
		problems = append(problems, decodeProblems(err, v.Get)...)
	}
	if err := cfg.Validate(); err != nil {
		problems = append(problems, strings.Split(err.Error(), "\n")...)
	}
	if len(problems) > 0 {
		where := "the configuration"
		if src.file != "" {
			where = "the configuration (" + displayName(src.file) + ")"
		}
		sort.Strings(problems)
		return cfg, src, usagef("%s is invalid:\n- %s\n  fix: correct these keys; `lab config print` shows the effective configuration", where, strings.Join(problems, "\n- "))
	}
	return cfg, src, nil
}

func displayName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

// decodeProblems splits mapstructure's aggregated error into one problem per
// line, each starting with the key it is about, like Validate's:
// "'cluster' has invalid keys: agnts" becomes "cluster.agnts: unknown key".
// value looks up what was given for a key, to quote it in the problem.
func decodeProblems(err error, value func(key string) any) []string {
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasSuffix(line, "error(s) decoding:") || strings.HasSuffix(line, "following error(s):") {
			continue
		}
		key, rest, quoted := cutQuotedKey(line)
		if !quoted {
			out = append(out, line)
			continue
		}
		if unknown, ok := strings.CutPrefix(rest, "has invalid keys: "); ok {
			for _, k := range strings.Split(unknown, ", ") {
				out = append(out, joinKey(key, k)+": unknown key")
			}
			continue
		}
		out = append(out, fmt.Sprintf("%s: %s (got %q)", key, rest, fmt.Sprint(value(key))))
	}
	return out
}

// cutQuotedKey splits "'a.b' rest" into a.b and rest.
func cutQuotedKey(line string) (key, rest string, ok bool) {
	if !strings.HasPrefix(line, "'") {
		return "", line, false
	}
	key, rest, ok = strings.Cut(line[1:], "' ")
	// mapstructure writes map entries as profiles[quick]; lab.yaml's keys are dotted.
	return strings.NewReplacer("[", ".", "]", "").Replace(key), rest, ok
}

func joinKey(prefix, key string) string {
	if prefix == "" || prefix == "lab.Config" { // mapstructure names the root by its type
		return key
	}
	return prefix + "." + key
}

// unknownEnv reports LAB_* variables that name no configuration key, so that
// a typo does not pass silently.
func unknownEnv(environ []string, keys []configKey) []string {
	known := map[string]bool{}
	for _, k := range keys {
		known[envName(k.key)] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") && !known[name] {
			out = append(out, fmt.Sprintf("%s: environment variable names no configuration key (known: LAB_CLUSTER_NAME, LAB_CLUSTER_INGRESSPORT, … see `lab config print --env`)", name))
		}
	}
	return out
}

func envName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// configKey is one leaf of the configuration with its value.
type configKey struct {
	key   string
	value any
}

// configKeys lists every leaf key of cfg in declaration order, named by the
// mapstructure tags, e.g. "cluster.ingressPort".
func configKeys(cfg lab.Config) []configKey {
	var out []configKey
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			fv := v.Field(i)
			switch {
			case fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)):
				walk(key, fv)
			case fv.Kind() == reflect.Map && fv.Type().Elem().Kind() == reflect.Struct:
				// A map of sections (the profiles): one key per entry, sorted.
				names := fv.MapKeys()
				sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() })
				for _, n := range names {
					walk(key+"."+n.String(), fv.MapIndex(n))
				}
			default:
				out = append(out, configKey{key: key, value: fv.Interface()})
			}
		}
	}
	walk("", reflect.ValueOf(cfg))
	return out
}

// printConfig writes cfg as YAML in declaration order, durations as text, so
// that the output is a valid lab.yaml.
func printConfig(w io.Writer, cfg lab.Config) error {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range configKeys(cfg) {
		parts := strings.Split(k.key, ".")
		m := root
		for _, p := range parts[:len(parts)-1] {
			m = child(m, p)
		}
		val := k.value
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		var vn yaml.Node
		if err := vn.Encode(val); err != nil {
			return fmt.Errorf("encode %s: %w", k.key, err)
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: parts[len(parts)-1]}, &vn)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return fmt.Errorf("print configuration: %w", err)
	}
	return enc.Close()
}

// child returns the mapping under key in m, adding it when missing.
func child(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	c := &yaml.Node{Kind: yaml.MappingNode}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, c)
	return c
}

// printEnv writes the environment variable of every key with its effective value.
func printEnv(w io.Writer, cfg lab.Config) {
	for _, k := range configKeys(cfg) {
		val := k.value
		switch x := val.(type) {
		case time.Duration:
			val = x.String()
		case []string:
			val = strings.Join(x, ",")
		}
		fmt.Fprintf(w, "%s=%v\n", envName(k.key), val)
	}
}
