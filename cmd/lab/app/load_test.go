package app

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestLoadExitCodes runs `lab load` against test servers: a passing run exits
// 0, a failed threshold 1, a target outside loopback and the lab's ingress 2.
func TestLoadExitCodes(t *testing.T) {
	clearLabEnv(t)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"products":[{"id":1}],"order_id":1}`))
	}))
	defer ok.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer broken.Close()
	scenario := t.TempDir() + "/get.yaml"
	writeFile(t, scenario, "name: get\nbehaviours:\n  - name: home\n    weight: 1\n    steps:\n      - name: home\n        method: GET\n        path: /\n")

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"passes", []string{"--target", ok.URL, "--scenario", scenario, "--threshold", "error_rate < 1%"}, exitOK, ""},
		{"threshold fails", []string{"--target", broken.URL, "--scenario", scenario, "--threshold", "error_rate < 1%"}, exitFail, "threshold"},
		{"foreign host refused", []string{"--target", "http://example.com"}, exitUsage, "--allow-host example.com"},
		{"bad threshold", []string{"--target", ok.URL, "--threshold", "p95 <<< 2s"}, exitUsage, "p95 <<< 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"load", "-q", "--users", "2", "--duration", "300ms", "--think", "10ms"}, tt.args...)
			code, _, stderr := run(t, "", args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tt.stderr, stderr)
			}
		})
	}
}

// TestLoadUsageErrors: flags that cannot make a run are usage errors (exit
// 2) that name the flag, the problem and the fix, before anything is sent.
func TestLoadUsageErrors(t *testing.T) {
	clearLabEnv(t)
	dead := closedPort(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"zero duration", []string{"--duration", "0"}, []string{"--duration 0s: must be positive", "fix: --duration 1m"}},
		{"negative users", []string{"--users", "-5"}, []string{"--users -5: the closed model needs at least 1 user", "fix: --users 10"}},
		{"users above the limit", []string{"--users", "99999999999", "--spawn-rate", "0"}, []string{
			"--users 99999999999 is above the load generator's limit of 10000 users (load.MaxUsers)", "fix: --users 10000 or fewer",
		}},
		{"open model without a rate", []string{"--model", "open", "--rate", "0"}, []string{"the open model needs a rate above 0", "fix: --rate 50"}},
		{"unknown model", []string{"--model", "poisson"}, []string{`--model "poisson" is not a load model`, "fix: --model closed (virtual users) or --model open (arrival rate)"}},
		{"negative timeout", []string{"--timeout", "-1s"}, []string{"--timeout -1s: must be positive", "fix: --timeout 10s"}},
		{"no requests", []string{"--max-requests", "0"}, []string{"--max-requests 0: must be at least 1", "fix: --max-requests 10000000"}},
		{"negative requests", []string{"--max-requests", "-3"}, []string{"--max-requests -3: must be at least 1"}},
		{"negative spawn rate", []string{"--spawn-rate", "-1"}, []string{"--spawn-rate -1: must be 0 or a positive number", "fix: --spawn-rate 10"}},
		{"spawn rate not a number", []string{"--spawn-rate", "NaN"}, []string{"--spawn-rate NaN: must be 0 or a positive number"}},
		{"in flight above the limit", []string{"--model", "open", "--max-in-flight", "20000"}, []string{"--max-in-flight 20000: must be between 1 and the load generator's limit of 10000 (load.MaxUsers)"}},
		{"negative connections", []string{"--max-conns", "-1"}, []string{"--max-conns -1 cannot be negative", "fix: --max-conns 0 for no limit"}},
		{"every problem at once", []string{"--duration", "0", "--users", "-5", "--timeout", "-1s"}, []string{
			"lab load: 3 problems", "- --users -5", "- --duration 0s", "- --timeout -1s", "fix: --users 10", "fix: --duration 1m", "fix: --timeout 10s",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"load", "--target", dead}, tt.args...)
			code, stdout, stderr := run(t, "", args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			if strings.Count(stderr, "Error:") != 1 {
				t.Errorf("the error is not printed exactly once:\n%s", stderr)
			}
			if strings.Contains(stderr, "• load") || stdout != "" {
				t.Errorf("a run started (or printed) with invalid flags:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

// closedPort returns the URL of a loopback port nothing listens on: a
// target that refuses every connection.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// TestLoadTargetAndModelFlags: a target without a scheme, an explicitly
// empty target and a flag of the other model are usage errors that say so,
// instead of a misleading fix, a silent default or a silently ignored flag.
func TestLoadTargetAndModelFlags(t *testing.T) {
	clearLabEnv(t)
	dead := closedPort(t)
	tests := []struct {
		name   string
		args   []string
		want   []string
		refuse []string
	}{
		{
			"no scheme",
			[]string{"--target", "127.0.0.1:18099"},
			[]string{`--target "127.0.0.1:18099" needs a scheme`, "fix: --target http://127.0.0.1:18099"},
			[]string{"--allow-host"},
		},
		{
			"no scheme, host only",
			[]string{"--target", "localhost"},
			[]string{`--target "localhost" needs a scheme`, "fix: --target http://localhost"},
			[]string{"--allow-host"},
		},
		{
			"another scheme",
			[]string{"--target", "ftp://127.0.0.1:21"},
			[]string{`--target "ftp://127.0.0.1:21" must be an http:// or https:// URL`, "fix: --target http://127.0.0.1:21"},
			[]string{"--allow-host"},
		},
		{
			"empty target",
			[]string{"--target", ""},
			[]string{"--target is empty", "fix: leave --target out to send to the lab's ingress (http://127.0.0.1:8080)"},
			nil,
		},
		{
			"foreign host",
			[]string{"--target", "http://shop.example:8080"},
			[]string{`--target host "shop.example" is neither loopback nor the lab's ingress`, "fix: --allow-host shop.example, if you mean it"},
			nil,
		},
		{
			"rate with the closed model",
			[]string{"--target", dead, "--rate", "100"},
			[]string{"--rate is a flag of the open model, and this run uses the closed model", "fix: --model open, or leave --rate out"},
			nil,
		},
		{
			"stage with the closed model",
			[]string{"--target", dead, "--model", "closed", "--stage", "10s:50"},
			[]string{"--stage is a flag of the open model, and this run uses the closed model", "fix: --model open, or leave --stage out"},
			nil,
		},
		{
			"max in flight with the closed model",
			[]string{"--target", dead, "--max-in-flight", "10"},
			[]string{"--max-in-flight is a flag of the open model"},
			nil,
		},
		{
			"users with the open model",
			[]string{"--target", dead, "--model", "open", "--users", "50"},
			[]string{"--users is a flag of the closed model, and this run uses the open model", "fix: --model closed, or leave --users out"},
			nil,
		},
		{
			"spawn rate with the open model",
			[]string{"--target", dead, "--model", "open", "--spawn-rate", "5"},
			[]string{"--spawn-rate is a flag of the closed model"},
			nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, "", append([]string{"load", "--duration", "1s"}, tt.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, exitUsage, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			for _, w := range tt.refuse {
				if strings.Contains(stderr, w) {
					t.Errorf("stderr suggests %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "• load") || stdout != "" {
				t.Errorf("a run started:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
			}
		})
	}
}

// TestLoadAgainstADeadTarget: with every connection refused, lab load says
// the target is down, the latency threshold is not measured (not passed),
// the progress step ends with ✗ and the exit code is 1, with or without
// thresholds.
func TestLoadAgainstADeadTarget(t *testing.T) {
	clearLabEnv(t)
	dead := closedPort(t)
	scenario := t.TempDir() + "/get.yaml"
	writeFile(t, scenario, "name: get\nbehaviours:\n  - name: home\n    weight: 1\n    steps:\n      - name: home\n        method: GET\n        path: /\n")
	tests := []struct {
		name       string
		args       []string
		wantStdout []string
	}{
		{"latency threshold", []string{"--threshold", "p95 < 2s"}, []string{"FAIL  p95 < 2s  (not measured: no request succeeded"}},
		{"no threshold", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"load", "--target", dead, "--scenario", scenario, "--users", "2", "--think", "10ms", "--duration", "300ms", "--max-requests", "40"}, tt.args...)
			code, stdout, stderr := run(t, "", args...)
			if code != exitFail {
				t.Errorf("exit %d, want %d", code, exitFail)
			}
			for _, w := range append(tt.wantStdout, "target down: all ", " requests failed: connection refused\n") {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout, "PASS") {
				t.Errorf("a threshold passed against a dead target:\n%s", stdout)
			}
			for _, w := range []string{"✗ load " + dead, "Error: target down: all ", "fix: check that the shop answers at " + dead} {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr)
				}
			}
			if strings.Contains(stderr, "✓") {
				t.Errorf("the progress step passed against a dead target:\n%s", stderr)
			}
		})
	}
}

// TestLogFormatJSON: under --log-format json every line on stderr is a JSON
// object: the progress of the step, its end, and the error with its exit
// code; nothing is plain text.
func TestLogFormatJSON(t *testing.T) {
	clearLabEnv(t)
	dead := closedPort(t)
	tests := []struct {
		name  string
		args  []string
		code  int
		error string
		steps bool
	}{
		{"failed run", []string{"load", "--target", dead, "--users", "1", "--think", "10ms", "--duration", "300ms", "--max-requests", "5"}, exitFail, "target down: all 5 requests failed: connection refused", true},
		{"usage error", []string{"load", "--target", dead, "--duration", "0"}, exitUsage, "--duration 0s: must be positive", false},
		{"configuration error", []string{"config", "print", "--config", "/does/not/exist.yaml"}, exitUsage, "the configuration (/does/not/exist.yaml) is invalid:", false},
		{"debug logs too", []string{"-v", "load", "--target", dead, "--duration", "0"}, exitUsage, "--duration 0s", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(t, "", append([]string{"--log-format", "json"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			var records []map[string]any
			for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
				var r map[string]any
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("stderr line is not JSON (%v): %q\nstderr:\n%s", err, line, stderr)
				}
				records = append(records, r)
			}
			msgs := map[string]map[string]any{}
			for _, r := range records {
				msgs[fmt.Sprint(r["msg"])] = r
			}
			last := records[len(records)-1]
			if last["level"] != "ERROR" || !strings.HasPrefix(fmt.Sprint(last["msg"]), tt.error) || last["exit_code"] != float64(tt.code) {
				t.Errorf("the last record is not the error %q with exit code %d: %v", tt.error, tt.code, last)
			}
			if _, ok := last["details"].([]any); !ok {
				t.Errorf("the error has no details: %v", last)
			}
			if tt.steps {
				if _, ok := msgs["step started"]; !ok {
					t.Errorf("no step started record:\n%s", stderr)
				}
				if end, ok := msgs["step ended"]; !ok || end["ok"] != false || !strings.HasPrefix(fmt.Sprint(end["error"]), "target down") {
					t.Errorf("no failed step ended record: %v\n%s", end, stderr)
				}
			}
		})
	}
}
