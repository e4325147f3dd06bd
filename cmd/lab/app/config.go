package app

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
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
// LAB_* environment variables, then the flags bound to keys. Every problem is
// reported at once: a file that cannot be read or parsed does not hide an
// unknown LAB_* variable, nor an unknown key the invalid values of the others.
func loadConfig(path string, stdin io.Reader, environ []string, flags map[string]*pflag.Flag) (lab.Config, configSource, error) {
	v := viper.New()
	cfg := lab.DefaultConfig()
	keys := configKeys(cfg)
	for _, k := range keys {
		v.SetDefault(k.key, k.value)
	}
	src := configSource{}
	var problems []string
	v.SetConfigType("yaml")
	switch {
	case path == "-":
		src.file = "-"
		if err := v.ReadConfig(stdin); err != nil {
			problems = append(problems, "standard input: "+readProblem(err))
		}
	case path != "":
		src.file = path
		if _, err := os.Stat(path); err != nil {
			problems = append(problems, fmt.Sprintf("--config %s: %v: pass an existing file, or leave --config out to use ./%s or the defaults", path, errors.Unwrap(err), defaultConfigFile))
			break
		}
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			problems = append(problems, path+": "+readProblem(err))
		}
	default:
		if _, err := os.Stat(defaultConfigFile); err == nil {
			src.file = defaultConfigFile
			v.SetConfigFile(defaultConfigFile)
			if err := v.ReadInConfig(); err != nil {
				problems = append(problems, defaultConfigFile+": "+readProblem(err))
			}
		}
	}

	// The file's custom profiles have keys too: LAB_PROFILES_<NAME>_USERS
	// sets one even where the file leaves it out, as for the built-in ones.
	keys = configKeys(withProfiles(cfg, fileProfiles(v)))
	for _, k := range keys {
		v.SetDefault(k.key, k.value) // a custom profile's: the zero value
	}
	v.SetEnvPrefix(envPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	problems = append(problems, unknownEnv(environ, keys)...)

	for key, f := range flags {
		if err := v.BindPFlag(key, f); err != nil {
			return cfg, src, fmt.Errorf("bind flag --%s to %s: %w", f.Name, key, err)
		}
	}

	// UnmarshalExact finds every unknown key and every value of the wrong
	// type, but drops a profile with an unknown key whole, whose values
	// would then go unjudged: the values come from Unmarshal, and Validate
	// judges all of them.
	scratch := lab.DefaultConfig()
	if err := v.UnmarshalExact(&scratch); err != nil {
		problems = append(problems, decodeProblems(err, func(key string) any { return rawValue(v, key) })...)
		_ = v.Unmarshal(&cfg) // its errors are those above
	} else {
		cfg = scratch
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
		return cfg, src, usagef("%s is invalid:\n- %s\n  fix: correct each of these; `lab config print` shows the effective configuration, `lab config print --env` every variable", where, strings.Join(problems, "\n- "))
	}
	return cfg, src, nil
}

// readProblem says why a configuration file could not be read, without
// viper's and the YAML parser's prefixes.
func readProblem(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "yaml: "); ok {
		return "not valid YAML: " + rest
	}
	return msg
}

// fileProfiles lists the profiles the file names.
func fileProfiles(v *viper.Viper) []string {
	m, ok := v.Get("profiles").(map[string]any)
	if !ok {
		return nil
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	return names
}

// withProfiles returns cfg with an empty profile for each name it lacks.
func withProfiles(cfg lab.Config, names []string) lab.Config {
	profiles := maps.Clone(cfg.Profiles)
	for _, n := range names {
		if _, ok := profiles[n]; !ok {
			profiles[n] = lab.Profile{}
		}
	}
	cfg.Profiles = profiles
	return cfg
}

func displayName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

// decodeProblems turns mapstructure's aggregated error into one problem per
// key, in the terms of lab.yaml rather than Go's: "cluster.agnts: unknown
// key", "cluster.agents: must be a number, got a list". value looks up what
// was given for a key, to say what it is.
func decodeProblems(err error, value func(key string) any) []string {
	var out []string
	decodeLeaves(err, func(name string, cause error) {
		key := userKey(name)
		msg := cause.Error()
		if unknown, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			for _, k := range strings.Split(unknown, ", ") {
				out = append(out, joinKey(key, k)+": unknown key")
			}
			return
		}
		// A list element of the wrong type inside something that is no
		// list at all: the list is what is wrong.
		if base, _, ok := strings.Cut(key, "["); ok {
			if _, isList := value(base).([]any); !isList {
				key = base
			}
		}
		if t := keyType(key); t != nil {
			out = append(out, fmt.Sprintf("%s: must be %s, got %s", key, typeWords(t), valueWords(value(key))))
			return
		}
		out = append(out, fmt.Sprintf("%s: %s (got %s)", key, msg, valueWords(value(key))))
	})
	return out
}

// decodeLeaves calls leaf with the key and the cause of every innermost
// decoding error in err, a tree of errors.Join and mapstructure's
// DecodeError (matched by its methods: mapstructure is viper's, not ours).
func decodeLeaves(err error, leaf func(name string, cause error)) {
	type decodeError interface {
		Name() string
		Unwrap() error
	}
	switch e := err.(type) { //nolint:errorlint // walks the error tree itself, one level at a time
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			decodeLeaves(x, leaf)
		}
	case decodeError:
		var inner decodeError
		if errors.As(e.Unwrap(), &inner) {
			decodeLeaves(e.Unwrap(), leaf)
			return
		}
		leaf(e.Name(), e.Unwrap())
	case interface{ Unwrap() error }: // "decoding failed due to the following error(s)"
		if inner := e.Unwrap(); inner != nil {
			decodeLeaves(inner, leaf)
			return
		}
		leaf("", err)
	case nil:
	default:
		leaf("", err)
	}
}

// userKey writes mapstructure's field name as lab.yaml's key: profiles[quick]
// is profiles.quick; list indexes stay, as in cluster.serverArgs[0].
func userKey(name string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(name, '[')
		j := strings.IndexByte(name, ']')
		if i < 0 || j < i {
			b.WriteString(name)
			return b.String()
		}
		b.WriteString(name[:i])
		if idx := name[i+1 : j]; strings.Trim(idx, "0123456789") == "" {
			b.WriteString(name[i : j+1])
		} else {
			b.WriteString("." + idx)
		}
		name = name[j+1:]
	}
}

// keyType is the Go type of a key of lab.Config, or nil when there is no
// such key.
func keyType(key string) reflect.Type {
	t := reflect.TypeOf(lab.Config{})
	for _, part := range strings.Split(key, ".") {
		name, index, _ := strings.Cut(part, "[")
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldByTag(t, name)
			if !ok {
				return nil
			}
			t = f.Type
		case reflect.Map:
			t = t.Elem()
		default:
			return nil
		}
		if index != "" {
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	return t
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ","); strings.EqualFold(name, tag) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// typeWords says what a value of type t is in lab.yaml.
func typeWords(t reflect.Type) string {
	if t == reflect.TypeOf(time.Duration(0)) {
		return "a duration such as 30s or 5m"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "text"
	case reflect.Slice:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a section of keys"
	}
	return t.String()
}

// valueWords says what a value read from YAML or the environment is.
func valueWords(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case []any:
		return "a list"
	case map[string]any:
		return "a section of keys"
	case string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}

// rawValue is what the file, the environment or a flag gave for key, as
// viper read it; list elements are indexed, as in cluster.serverArgs[0].
func rawValue(v *viper.Viper, key string) any {
	base, index, ok := strings.Cut(key, "[")
	val := v.Get(base)
	if !ok {
		return val
	}
	list, isList := val.([]any)
	n, err := strconv.Atoi(strings.TrimSuffix(index, "]"))
	if !isList || err != nil || n < 0 || n >= len(list) {
		return nil
	}
	return list[n]
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
		if !strings.HasPrefix(name, envPrefix+"_") || known[name] {
			continue
		}
		if profile, ok := strings.CutPrefix(name, envPrefix+"_PROFILES_"); ok {
			profile, _, _ = strings.Cut(profile, "_")
			out = append(out, fmt.Sprintf("%s: environment variable of a profile %s that the configuration file does not define: add profiles.%s to lab.yaml, or unset it", name, strings.ToLower(profile), strings.ToLower(profile)))
			continue
		}
		out = append(out, fmt.Sprintf("%s: environment variable names no configuration key (known: LAB_CLUSTER_NAME, LAB_CLUSTER_INGRESSPORT, … see `lab config print --env`)", name))
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

// printEnv writes the shell line that exports each key's variable with its
// effective value, quoted where the shell needs it: eval "$(lab config print
// --env)" sets them all, and lab reads them back as they were. A key no
// variable can carry is a comment saying why.
func printEnv(w io.Writer, cfg lab.Config) {
	said := map[string]bool{}
	for _, k := range configKeys(cfg) {
		name := envName(k.key)
		if !validEnvName(name) {
			// Only a profile's name can make it invalid: say so once.
			parts := strings.SplitN(k.key, ".", 3)
			if p := strings.Join(parts[:min(2, len(parts))], "."); !said[p] {
				said[p] = true
				fmt.Fprintf(w, "# %s: no LAB_* variables: %q cannot be part of a variable name; set its keys in lab.yaml\n", p, parts[len(parts)-2])
			}
			continue
		}
		var val string
		switch x := k.value.(type) {
		case time.Duration:
			val = x.String()
		case []string:
			if slices.ContainsFunc(x, func(s string) bool { return strings.Contains(s, ",") }) {
				fmt.Fprintf(w, "# %s: not printed: a value holds a ',', and a variable's list is split at ','; set %s in lab.yaml\n", name, k.key)
				continue
			}
			val = strings.Join(x, ",")
		case float64:
			val = strconv.FormatFloat(x, 'g', -1, 64)
		default:
			val = fmt.Sprint(x)
		}
		fmt.Fprintf(w, "export %s=%s\n", name, shellQuote(val))
	}
}

// validEnvName reports whether a POSIX shell can assign the variable.
func validEnvName(name string) bool {
	for i, r := range name {
		letter := r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z'
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return name != ""
}

// shellQuote returns s as one word of a POSIX shell: as it is when only safe
// characters make it up, single-quoted otherwise, each single quote of s
// closing the quotes, escaped, and opening them again.
func shellQuote(s string) string {
	safe := s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == ""
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
