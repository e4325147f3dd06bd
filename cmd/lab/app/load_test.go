package app

import (
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
