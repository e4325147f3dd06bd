package app

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jewelry-shop/lab/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// run executes the lab command line through Main, as main does, and returns
// its exit code and output.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, Streams{In: strings.NewReader(stdin), Out: &out, Err: &errb}, Build{Version: "v0.0.0-test", Commit: "test"})
	return code, out.String(), errb.String()
}

// goldenFile compares got with testdata/<name>, or rewrites it under -update.
func goldenFile(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name), []byte(got), *update)
}

// clearLabEnv removes LAB_* variables of the developer's shell from the test.
func clearLabEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "LAB_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"},
		{"up", "--help"},
		{"down", "--help"},
		{"status", "--help"},
		{"load", "--help"},
		{"validate", "--help"},
		{"report", "--help"},
		{"config", "print", "--help"},
		{"version", "--help"},
		{"images", "--help"},
	} {
		name := strings.Join(args[:len(args)-1], "-")
		if name == "" {
			name = "lab"
		}
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", args...)
			if code != exitOK || stderr != "" {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			goldenFile(t, filepath.Join("help", name+".golden"), stdout)
		})
	}
}

// TestConfigFiles loads every fixture in testdata/config through `lab config
// print` and compares what it prints (the effective configuration, or the
// errors) and its exit code with the golden file beside it.
func TestConfigFiles(t *testing.T) {
	clearLabEnv(t)
	files, err := filepath.Glob(filepath.Join("testdata", "config", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", "config", "print", "--config", f)
			wantCode := exitOK
			if strings.HasPrefix(name, "invalid-") {
				wantCode = exitUsage
			}
			if code != wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, wantCode, stderr)
			}
			goldenFile(t, filepath.Join("config", name+".golden"), stdout+stderr)
		})
	}
}

// TestConfigPrecedence checks defaults < file < environment < flags, each key
// on its own.
func TestConfigPrecedence(t *testing.T) {
	clearLabEnv(t)
	file := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(file, []byte("cluster:\n  name: from-file\n  ingressPort: 9000\n  apiPort: 7000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LAB_CLUSTER_INGRESSPORT", "9001")
	t.Setenv("LAB_CLUSTER_AGENTS", "4")

	o := &options{streams: Streams{In: strings.NewReader("")}, environ: os.Environ()}
	up := newUpCmd(o)
	if err := up.ParseFlags([]string{"--ingress-port", "9002"}); err != nil {
		t.Fatal(err)
	}
	o.configPath = file
	o.logFormat = "text"
	if err := o.setup(up); err != nil {
		t.Fatalf("setup: %v", err)
	}
	got := map[string]any{
		"name (file)":           o.cfg.Cluster.Name,
		"apiPort (file)":        o.cfg.Cluster.APIPort,
		"agents (env)":          o.cfg.Cluster.Agents,
		"ingressPort (flag)":    o.cfg.Cluster.IngressPort,
		"servers (default)":     o.cfg.Cluster.Servers,
		"ingressHost (default)": o.cfg.Cluster.IngressHost,
	}
	want := map[string]any{
		"name (file)":           "from-file",
		"apiPort (file)":        7000,
		"agents (env)":          4,
		"ingressPort (flag)":    9002,
		"servers (default)":     1,
		"ingressHost (default)": "127.0.0.1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("effective configuration (-want +got):\n%s", diff)
	}
}

func TestConfigFromStdin(t *testing.T) {
	clearLabEnv(t)
	code, stdout, stderr := run(t, "cluster:\n  agents: 5\n", "config", "print", "-c", "-")
	if code != exitOK || !strings.Contains(stdout, "agents: 5") || !strings.Contains(stdout, "file: standard input") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

func TestUnknownEnvironmentVariable(t *testing.T) {
	clearLabEnv(t)
	t.Setenv("LAB_CLUSTER_NAEM", "typo")
	code, _, stderr := run(t, "", "config", "print")
	if code != exitUsage || !strings.Contains(stderr, "LAB_CLUSTER_NAEM: environment variable names no configuration key") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestConfigReportsEveryProblem: a file that cannot be read or parsed, an
// unknown key or a value of the wrong type does not hide the other
// problems: all are reported at once.
func TestConfigReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin string
		env   map[string]string
		want  []string
	}{
		{
			"YAML syntax error and unknown variable",
			[]string{"--config", filepath.Join("testdata", "config", "invalid-yaml.yaml")},
			"",
			map[string]string{"LAB_CLUSTER_NAEM": "typo"},
			[]string{"invalid-yaml.yaml: not valid YAML: line 3: mapping values are not allowed in this context", "LAB_CLUSTER_NAEM: environment variable names no configuration key"},
		},
		{
			"missing file and invalid variable",
			[]string{"--config", "/does/not/exist.yaml"},
			"",
			map[string]string{"LAB_CLUSTER_AGENTS": "99"},
			[]string{"--config /does/not/exist.yaml: no such file or directory", "cluster.agents: must be between 0 and 9, got 99"},
		},
		{
			"standard input not YAML and unknown variable",
			[]string{"--config", "-"},
			"cluster: [\n",
			map[string]string{"LAB_NOPE": "1"},
			[]string{"standard input: not valid YAML:", "LAB_NOPE: environment variable names no configuration key"},
		},
		{
			"unknown key beside invalid values",
			[]string{"--config", filepath.Join("testdata", "config", "invalid-profiles.yaml")},
			"", nil,
			[]string{
				"profiles.quick.thresholds.failovr: unknown key", "profiles.quick: users must be between 1 and 1000, got 5000",
				`profiles.quick: unknown experiment "meteor-strike"`, "profiles.quick: thresholds.availability must be a fraction between 0 and 1, got 99",
			},
		},
		{
			"wrong type beside an unknown variable",
			[]string{"--config", "-"},
			"cluster:\n  agents: [1, 2]\n",
			map[string]string{"LAB_CLUSTER_AGNETS": "3"},
			[]string{"cluster.agents: must be a number, got a list", "LAB_CLUSTER_AGNETS: environment variable names no configuration key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearLabEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := run(t, tt.stdin, append([]string{"config", "print"}, tt.args...)...)
			if code != exitUsage || stdout != "" {
				t.Errorf("exit %d, want %d; stdout:\n%s", code, exitUsage, stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			if strings.Count(stderr, "Error:") != 1 {
				t.Errorf("the error is not printed exactly once:\n%s", stderr)
			}
		})
	}
}

// TestConfigTypeProblems: a value of the wrong type is named in lab.yaml's
// terms (a number, a list, a duration), never in Go's.
func TestConfigTypeProblems(t *testing.T) {
	clearLabEnv(t)
	tests := []struct {
		yaml string
		want string
	}{
		{"cluster:\n  agents: [1, 2]\n", "cluster.agents: must be a number, got a list"},
		{"cluster:\n  servers: {a: 1}\n", "cluster.servers: must be a number, got a section of keys"},
		{"cluster:\n  servers: one\n", `cluster.servers: must be a number, got "one"`},
		{"cluster:\n  name: [a]\n", "cluster.name: must be text, got a list"},
		{"cluster:\n  updateDefaultKubeconfig: maybe\n", `cluster.updateDefaultKubeconfig: must be true or false, got "maybe"`},
		{"cluster:\n  readyTimeout: soon\n", `cluster.readyTimeout: must be a duration such as 30s or 5m, got "soon"`},
		{"cluster:\n  createTimeout: [1m]\n", "cluster.createTimeout: must be a duration such as 30s or 5m, got a list"},
		{"cluster:\n  serverArgs: {a: b}\n", "cluster.serverArgs: must be a list, got a section of keys"},
		{"cluster:\n  serverArgs: [[a]]\n", "cluster.serverArgs[0]: must be text, got a list"},
		{"preflight: [1]\n", "preflight: must be a section of keys, got a list"},
		{"profiles:\n  full: 3\n", "profiles.full: must be a section of keys, got 3"},
		{"profiles:\n  quick:\n    spawnRate: [1]\n", "profiles.quick.spawnRate: must be a number, got a list"},
		{"profiles:\n  soak:\n    users: lots\n", `profiles.soak.users: must be a number, got "lots"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			code, _, stderr := run(t, tt.yaml, "config", "print", "-c", "-")
			if code != exitUsage || !strings.Contains(stderr, "- "+tt.want+"\n") {
				t.Errorf("exit %d; stderr does not contain %q:\n%s", code, tt.want, stderr)
			}
			for _, goWords := range []string{"interface", "unconvertible", "expected type", "strconv", "time.Duration", "map["} {
				if strings.Contains(stderr, goWords) {
					t.Errorf("stderr speaks Go (%q):\n%s", goWords, stderr)
				}
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	clearLabEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"up", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"up", "extra"}, `unknown command "extra" for "lab up"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "lab"`},
		{[]string{"up", "--ingress-port", "http"}, `invalid argument "http" for "--ingress-port"`},
		{[]string{"status", "--log-format", "xml"}, "--log-format must be text or json"},
		{[]string{"down", "-q", "-v"}, "--quiet and --verbose contradict each other"},
		{[]string{"up", "--config", "/does/not/exist.yaml"}, "--config /does/not/exist.yaml: no such file or directory"},
		{[]string{"up", "--name", "Not_Valid"}, `cluster.name: "Not_Valid" is not a valid cluster name`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := run(t, "", tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, stderr)
			}
			if strings.Count(stderr, "Error:") != 1 {
				t.Errorf("the error is not printed exactly once:\n%s", stderr)
			}
			if stdout != "" {
				t.Errorf("usage error wrote to stdout:\n%s", stdout)
			}
		})
	}
}

// TestReport re-renders a golden report of package reports from its JSON.
func TestReport(t *testing.T) {
	src := filepath.Join("..", "..", "..", "reports", "testdata", "TestGolden_failing.golden")
	code, stdout, stderr := run(t, "", "report", src+".json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want, err := os.ReadFile(src + ".md")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), stdout); diff != "" {
		t.Errorf("re-rendered report differs (-want +got):\n%s", diff)
	}
}

// TestReportInputErrors: a report that cannot be read is the input's fault,
// a usage error (exit 2) that names the file, the problem and the fix, and
// nothing is written.
func TestReportInputErrors(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(filepath.Join("..", "..", "..", "reports", "testdata", "TestGolden_failing.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"empty.json":     "",
		"text.json":      "this is not JSON\n",
		"truncated.json": string(good[:len(good)/2]),
		"other.json":     `{"schema": "something-else/v9"}`,
	}
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(runDir, "report.json"), string(good))
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"missing", filepath.Join(dir, "nope.json"), []string{"nope.json", "no such file", "fix: pass the report.json"}},
		{"empty", filepath.Join(dir, "empty.json"), []string{"empty.json is empty", "fix: pass the report.json"}},
		{"not JSON", filepath.Join(dir, "text.json"), []string{"text.json is not a lab report", "invalid character", "fix: pass the report.json"}},
		{"truncated", filepath.Join(dir, "truncated.json"), []string{"truncated.json is not a lab report", "unexpected end of JSON input", "fix: pass the report.json"}},
		{"other schema", filepath.Join(dir, "other.json"), []string{"other.json is not a lab report", "unsupported report schema"}},
		{"a directory", runDir, []string{runDir + " is a directory", "fix: lab report " + filepath.Join(runDir, "report.json")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.md")
			for _, args := range [][]string{{"report", tt.file}, {"report", tt.file, "--out", out}} {
				code, stdout, stderr := run(t, "", args...)
				if code != exitUsage {
					t.Errorf("%v: exit %d, want %d; stderr:\n%s", args, code, exitUsage, stderr)
				}
				for _, w := range tt.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%v: stderr does not contain %q:\n%s", args, w, stderr)
					}
				}
				if stdout != "" {
					t.Errorf("%v: wrote to stdout:\n%s", args, stdout)
				}
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("--out %s was written for a report that could not be read", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := run(t, "", "version")
	if code != exitOK || !strings.HasPrefix(stdout, "lab v0.0.0-test (commit test,") || !strings.Contains(stdout, "k3s image       docker.io/rancher/k3s:v1.33.6-k3s1") {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout)
	}
	first, _, _ := strings.Cut(stdout, "\n")
	// lab --version prints the first line of lab version, and only it.
	for _, args := range [][]string{{"--version"}, {"--version", "-q"}} {
		code, got, stderr := run(t, "", args...)
		if code != exitOK || got != first+"\n" || stderr != "" {
			t.Errorf("lab %v: exit %d, stdout %q, stderr %q; want %q", args, code, got, stderr, first+"\n")
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestProfileVariables: LAB_PROFILES_<NAME>_* sets a key of a profile the
// file defines, even one the file leaves out; a profile the file does not
// define has no variables, and the error says so.
func TestProfileVariables(t *testing.T) {
	file := filepath.Join(t.TempDir(), "lab.yaml")
	writeFile(t, file, "profiles:\n  soak:\n    users: 200\n    spawnRate: 5\n    load: 20m\n    budget: 30m\n")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
	}{
		{"key the file sets", []string{"-c", file}, map[string]string{"LAB_PROFILES_SOAK_USERS": "7"}, exitOK, []string{"  soak:\n", "    users: 7\n"}},
		{"key the file leaves out", []string{"-c", file}, map[string]string{"LAB_PROFILES_SOAK_BASELINE": "2m"}, exitOK, []string{"    baseline: 2m0s\n"}},
		{"threshold the file leaves out", []string{"-c", file}, map[string]string{"LAB_PROFILES_SOAK_THRESHOLDS_P95": "750ms"}, exitOK, []string{"      p95: 750ms\n"}},
		{
			"profile the file does not define", nil,
			map[string]string{"LAB_PROFILES_SOAK_USERS": "7"},
			exitUsage,
			[]string{"LAB_PROFILES_SOAK_USERS: environment variable of a profile soak that the configuration file does not define: add profiles.soak to lab.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearLabEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, stdout, stderr := run(t, "", append([]string{"config", "print"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output does not contain %q:\n%s%s", w, stdout, stderr)
				}
			}
		})
	}
}

// TestConfigPrintEnvRoundTrip: `eval "$(lab config print --env)"` in a
// POSIX shell sets every variable to its value, however it is quoted, and
// lab reads them all back: the same configuration, with only the custom
// profile's name from a file.
func TestConfigPrintEnvRoundTrip(t *testing.T) {
	clearLabEnv(t)
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh: ", err)
	}
	dir := t.TempDir()
	tricky := `it's "quoted", costs $5 & more; a \back\slash, a * and ` + "`ls`"
	full := filepath.Join(dir, "full.yaml")
	writeFile(t, full, `cluster:
  name: round-trip
  agents: 3
  kubeconfig: /tmp/with space/kubeconfig
stack:
  chartCache: "/tmp/$HOME/charts"
profiles:
  quick:
    description: '`+strings.ReplaceAll(tricky, "'", "''")+`'
  soak:
    description: "soak; it's long"
    users: 200
    spawnRate: 5
    load: 20m
    budget: 30m
    experiments: [web-pod-kill, web-pod-failure]
    spacing: 5m
  soak-test:
    users: 1
    spawnRate: 1
    load: 1m
    budget: 2m
`)
	code, printed, stderr := run(t, "", "config", "print", "--env", "-c", full)
	if code != exitOK {
		t.Fatalf("config print --env: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(printed, "# profiles.soak-test: ") {
		t.Errorf("a profile whose name cannot be in a variable name is not said so:\n%s", printed)
	}

	// The shell evaluates the output and shows its environment.
	cmd := exec.CommandContext(t.Context(), sh, "-c", `eval "$1" && env -0`, "sh", printed)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sh: eval of lab config print --env: %v\n%s", err, printed)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(string(out), "\x00") {
		if name, value, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(name, "LAB_") {
			env[name] = value
		}
	}
	for name, want := range map[string]string{
		"LAB_PROFILES_QUICK_DESCRIPTION": tricky,
		"LAB_CLUSTER_KUBECONFIG":         "/tmp/with space/kubeconfig",
		"LAB_STACK_CHARTCACHE":           "/tmp/$HOME/charts",
		"LAB_PROFILES_SOAK_DESCRIPTION":  "soak; it's long",
		"LAB_PROFILES_SOAK_EXPERIMENTS":  "web-pod-kill,web-pod-failure",
	} {
		if env[name] != want {
			t.Errorf("after eval, %s=%q, want %q", name, env[name], want)
		}
	}

	// Read back with a file that only names the custom profiles: the
	// environment carries every value.
	names := filepath.Join(dir, "names.yaml")
	writeFile(t, names, "profiles:\n  soak: {}\n  soak-test:\n    users: 1\n    spawnRate: 1\n    load: 1m\n    budget: 2m\n")
	for k, v := range env {
		t.Setenv(k, v)
	}
	code, again, stderr := run(t, "", "config", "print", "--env", "-c", names)
	if code != exitOK {
		t.Fatalf("config print --env from the environment: exit %d\n%s", code, stderr)
	}
	if diff := cmp.Diff(printed, again); diff != "" {
		t.Errorf("config print --env differs after a round trip through the environment (-first +second):\n%s", diff)
	}
	_, yamlFull, _ := run(t, "", "config", "print", "-c", full)
	_, yamlEnv, _ := run(t, "", "config", "print", "-c", names)
	_, yamlFull, _ = strings.Cut(yamlFull, "\n") // the first line names the file
	_, yamlEnv, _ = strings.Cut(yamlEnv, "\n")
	if diff := cmp.Diff(yamlFull, yamlEnv); diff != "" {
		t.Errorf("the configuration differs after a round trip through the environment (-file +environment):\n%s", diff)
	}
}

// TestInterruptNotice: the first Ctrl-C says what happens next, which is
// the running command's to say.
func TestInterruptNotice(t *testing.T) {
	t.Parallel()
	_, o := newRoot(Streams{}, Build{})
	if got := o.interruptNotice(); !strings.Contains(got, "stopping and cleaning up") {
		t.Errorf("default notice = %q, want it to say lab stops and cleans up", got)
	}
	o.setInterruptNotice("Interrupted: finishing the removal first")
	if got := o.interruptNotice(); got != "Interrupted: finishing the removal first" {
		t.Errorf("notice = %q after the command set its own", got)
	}
}
