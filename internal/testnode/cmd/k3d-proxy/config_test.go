package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	k3d "github.com/k3d-io/k3d/v5/pkg/types"
	"sigs.k8s.io/yaml"
)

// TestParseConfigReadsWhatK3dWrites marshals k3d's own configuration type
// as k3d does before it copies the file into the load balancer.
func TestParseConfigReadsWhatK3dWrites(t *testing.T) {
	t.Parallel()
	b, err := yaml.Marshal(k3d.LoadbalancerConfig{
		Ports: map[string][]string{
			"6443.tcp": {"k3d-lab-server-0"},
			"80.tcp":   {"k3d-lab-server-0", "k3d-lab-agent-0", "k3d-lab-agent-1"},
		},
		Settings: k3d.LoadBalancerSettings{WorkerConnections: k3d.DefaultLoadbalancerWorkerConnections + 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	routes, settings, err := parseConfig(b)
	if err != nil {
		t.Fatalf("parseConfig(%s): %v", b, err)
	}
	want := []route{
		{port: 80, upstreams: []string{"k3d-lab-server-0", "k3d-lab-agent-0", "k3d-lab-agent-1"}},
		{port: 6443, upstreams: []string{"k3d-lab-server-0"}},
	}
	if diff := cmp.Diff(want, routes, cmp.AllowUnexported(route{})); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	if settings.WorkerConnections != 1026 {
		t.Errorf("workerConnections = %d, want 1026", settings.WorkerConnections)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []route
		wantErr string
	}{
		{
			name: "k3d's file as it is on the node",
			in:   "ports:\n  6443.tcp:\n  - k3d-x-server-0\nsettings:\n  workerConnections: 1025\n",
			want: []route{{port: 6443, upstreams: []string{"k3d-x-server-0"}}},
		},
		{name: "udp", in: "ports:\n  53.udp: [k3d-x-agent-0]\n", wantErr: "TCP only"},
		{name: "no protocol", in: "ports:\n  '6443': [a]\n", wantErr: "want <port>.<protocol>"},
		{name: "port out of range", in: "ports:\n  70000.tcp: [a]\n", wantErr: "want <port>.<protocol>"},
		{name: "no upstreams", in: "ports:\n  80.tcp: []\n", wantErr: "no upstream nodes"},
		{name: "upstream with a port", in: "ports:\n  80.tcp: ['a:80']\n", wantErr: "not a node name"},
		{name: "nothing to forward", in: "settings:\n  workerConnections: 1\n", wantErr: "forwards no port"},
		{name: "unknown field", in: "ports:\n  80.tcp: [a]\nupstreamTimeout: 3\n", wantErr: "unknown field"},
		{name: "proxy timeout", in: "ports:\n  80.tcp: [a]\nsettings:\n  defaultProxyTimeout: 600\n", wantErr: "not supported"},
		{name: "not YAML", in: "ports: [", wantErr: "parse the load balancer configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, _, err := parseConfig([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig error = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseConfig: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(route{})); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWatchForwards runs the configuration loop on a file: the proxy
// listens on 127.0.0.1 and forwards to an upstream on 127.0.0.2 after
// skipping one that does not resolve, prints the ready line after each
// configuration, and follows a rewritten file.
func TestWatchForwards(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// The upstream answers with one line on a free port of 127.0.0.2; the
	// proxy listens on the same port number on 127.0.0.1.
	up, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2 (Linux routes all of 127/8 to loopback): %v", err)
	}
	defer up.Close()
	go func() {
		for {
			c, err := up.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, "hello from upstream\n")
			_ = c.Close()
		}
	}()
	port := strconv.Itoa(up.Addr().(*net.TCPAddr).Port)
	path := filepath.Join(t.TempDir(), "values.yaml")
	write := func(upstreams string) {
		t.Helper()
		if err := os.WriteFile(path, []byte("ports:\n  "+port+".tcp: ["+upstreams+"]\nsettings:\n  workerConnections: 8\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// dead.invalid never resolves (RFC 6761): the proxy moves on.
	write("dead.invalid, 127.0.0.2")

	out := &lines{ch: make(chan string, 16)}
	p := newProxy(slog.New(slog.DiscardHandler), "127.0.0.1")
	defer p.close()
	done := make(chan error, 1)
	go func() { done <- watch(ctx, slog.New(slog.DiscardHandler), out, path, 50*time.Millisecond, p) }()
	out.await(t, readyLine)

	for i := range 4 { // round robin: both orders of the two upstreams
		got, err := ask(ctx, "127.0.0.1:"+port)
		if err != nil || got != "hello from upstream" {
			t.Fatalf("request %d through the proxy: got %q, %v", i, got, err)
		}
	}
	write("dead.invalid")
	out.await(t, readyLine)
	if got, err := ask(ctx, "127.0.0.1:"+port); err == nil {
		t.Errorf("with no live upstream the proxy still forwarded: got %q", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("watch returned %v, want context.Canceled", err)
	}
}

// lines collects what watch prints, line by line.
type lines struct{ ch chan string }

func (l *lines) Write(b []byte) (int, error) {
	for _, s := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		l.ch <- s
	}
	return len(b), nil
}

func (l *lines) await(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-l.ch:
		if got != want {
			t.Fatalf("watch printed %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("watch did not print %q", want)
	}
}

// ask connects to addr and returns the first line it reads.
func ask(ctx context.Context, addr string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}
