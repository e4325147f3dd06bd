package services

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/jewelry-shop/lab/internal/ci"
)

// A Patroni cluster for tests (tier 2b of DESIGN.md's verification): three
// members on 127.0.0.1, each a Patroni process (Debian's patroni 3.0.2) with
// its own PostgreSQL 15 data directory, keeping their state in the
// Kubernetes API of the test control plane the way Spilo does under the
// postgres-operator 2.x:
//
//   - the leader lock, the configuration, the synchronous-standby state and
//     the failover key are ConfigMaps (kubernetes.use_endpoints: false),
//     named <scope>-leader, -config, -sync, -failover;
//   - the members are Pod objects, created here on the simulated nodes with
//     the operator's labels (application=spilo, cluster-name=<scope>); each
//     Patroni writes its status into its Pod's annotations and its role into
//     the spilo-role label (master or replica), as in the cluster;
//   - the primary Service is a real Service that selects spilo-role=master;
//     the control plane's EndpointSlice controller computes its endpoints
//     and a loopback proxy forwards each new connection to one of the ready
//     endpoints, as kube-proxy does;
//   - a pod is Ready as the kubelet would have it under the operator's
//     readiness probe (GET /readiness on Patroni's REST API every 10 s,
//     3 failures, from 6 s after the start), and not Ready from the moment
//     its processes are down.
//
// Each member reaches the API server through a loopback proxy of its own,
// which Isolate cuts: that member alone loses the DCS, the others and the
// clients still reach it.

// Where the Debian packages put the binaries.
const (
	patroniBinary = "/usr/bin/patroni"
	// patroniStartTimeout bounds a member's start: the first member runs
	// initdb, the others a base backup.
	patroniStartTimeout = 2 * time.Minute
	// patroniStopTimeout bounds a graceful stop before it becomes a kill,
	// like the pod's termination grace period.
	patroniStopTimeout = time.Minute
)

// PatroniSettings are the Patroni settings of the chart's postgresql
// resource (spec.patroni), which the postgres-operator hands to Spilo and
// Spilo writes into Patroni's bootstrap DCS configuration. Times are in
// seconds, as Patroni takes them.
type PatroniSettings struct {
	TTL                   int   `json:"ttl"`
	LoopWait              int   `json:"loop_wait"`
	RetryTimeout          int   `json:"retry_timeout"`
	MaximumLagOnFailover  int64 `json:"maximum_lag_on_failover"`
	SynchronousMode       bool  `json:"synchronous_mode"`
	SynchronousModeStrict bool  `json:"synchronous_mode_strict"`
}

// PostgresqlSpec is what the cluster takes from a postgresql resource of the
// Zalando postgres-operator.
type PostgresqlSpec struct {
	// Name is the resource's name: the Patroni scope, the prefix of the
	// pods' names and the primary Service's name.
	Name string
	// Patroni are the Patroni settings.
	Patroni PatroniSettings
	// Parameters are the PostgreSQL parameters (spec.postgresql.parameters).
	Parameters map[string]string
	// Version is the PostgreSQL major version the resource asks for; the
	// test runs the Debian package's, PostgresVersion.
	Version string
}

// PostgresVersion is the PostgreSQL major version of PostgresBinDir.
const PostgresVersion = "15"

// ParsePostgresql reads a rendered postgresql resource (an object of kind
// postgresql, apiVersion acid.zalan.do/v1). Every key of spec.patroni must be
// one that PatroniSettings carries, and every one of them must be set: a
// setting the test would not apply, or would silently default, is an error,
// so that the test and the chart cannot drift apart.
func ParsePostgresql(obj map[string]any) (PostgresqlSpec, error) {
	var doc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Patroni    map[string]json.RawMessage `json:"patroni"`
			Postgresql struct {
				Version    string            `json:"version"`
				Parameters map[string]string `json:"parameters"`
			} `json:"postgresql"`
		} `json:"spec"`
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return PostgresqlSpec{}, fmt.Errorf("encode the postgresql resource: %w", err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return PostgresqlSpec{}, fmt.Errorf("decode the postgresql resource: %w", err)
	}
	if doc.Kind != "postgresql" || !strings.HasPrefix(doc.APIVersion, "acid.zalan.do/") {
		return PostgresqlSpec{}, fmt.Errorf("not a postgresql resource of the postgres-operator: %s %s", doc.APIVersion, doc.Kind)
	}
	spec := PostgresqlSpec{Name: doc.Metadata.Name, Parameters: doc.Spec.Postgresql.Parameters, Version: doc.Spec.Postgresql.Version}
	want := map[string]any{
		"ttl": &spec.Patroni.TTL, "loop_wait": &spec.Patroni.LoopWait, "retry_timeout": &spec.Patroni.RetryTimeout,
		"maximum_lag_on_failover": &spec.Patroni.MaximumLagOnFailover,
		"synchronous_mode":        &spec.Patroni.SynchronousMode, "synchronous_mode_strict": &spec.Patroni.SynchronousModeStrict,
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(doc.Spec.Patroni)) {
		if _, ok := want[k]; !ok {
			errs = append(errs, fmt.Errorf("spec.patroni.%s is not applied by the test cluster: add it to services.PatroniSettings", k))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		dst := want[k]
		v, ok := doc.Spec.Patroni[k]
		if !ok {
			errs = append(errs, fmt.Errorf("spec.patroni.%s is not set", k))
			continue
		}
		if err := json.Unmarshal(v, dst); err != nil {
			errs = append(errs, fmt.Errorf("spec.patroni.%s: %w", k, err))
		}
	}
	if spec.Name == "" {
		errs = append(errs, errors.New("metadata.name is empty"))
	}
	return spec, errors.Join(errs...)
}

// PatroniOptions configure StartPatroni.
type PatroniOptions struct {
	// Kubeconfig is the path of a kubeconfig with the right to manage pods,
	// services and config maps in Namespace (the test control plane's).
	Kubeconfig string
	// Namespace is where the pods, the Service and Patroni's ConfigMaps go.
	Namespace string
	// Nodes are the simulated nodes, one member on each (the operator's
	// required pod anti-affinity); their number is the cluster's size.
	Nodes []string
	// Spec is the postgresql resource whose settings the cluster runs.
	Spec PostgresqlSpec
	// Binary is the patroni executable; empty means Debian's.
	Binary string
}

// PatroniCluster is a running Patroni cluster. Create it with StartPatroni.
type PatroniCluster struct {
	// Scope is Patroni's scope: the cluster's name.
	Scope string
	// Namespace holds the cluster's Kubernetes objects.
	Namespace string
	// Members are the cluster's members, in the order of their pod names.
	Members []*PatroniMember
	// Settings are the Patroni settings the cluster was bootstrapped with.
	Settings PatroniSettings

	kube    kubernetes.Interface
	primary *tcpProxy
	service *serviceEndpoints
}

// PatroniMember is one member: a Pod object, a Patroni process and the
// PostgreSQL it manages.
type PatroniMember struct {
	// Name is the member's and its Pod's name, <scope>-<i>.
	Name string
	// Node is the simulated node the Pod is on.
	Node string
	// PodIP is the address the simulated kubelet gave the Pod; nothing
	// listens there, the member's servers are on 127.0.0.1.
	PodIP string
	// Port is PostgreSQL's port on 127.0.0.1.
	Port int
	// APIPort is the port of Patroni's REST API on 127.0.0.1.
	APIPort int
	// Dir holds the data directory, the configuration and the log.
	Dir string

	cluster *PatroniCluster
	proc    *process
	api     *tcpProxy // this member's path to the API server
	kubelet *podReadiness
}

// StartPatroni starts a Patroni cluster of one member per node and waits
// until it is healthy (see WaitHealthy). Everything is removed in t.Cleanup:
// the processes are stopped by PID, the data directories deleted; the
// Kubernetes objects go with the test's namespace. A member that fails to
// start ends the test with the end of its log.
func StartPatroni(tb testing.TB, opts PatroniOptions) *PatroniCluster {
	tb.Helper()
	bin := opts.Binary
	if bin == "" {
		bin = patroniBinary
		if _, err := os.Stat(bin); err != nil {
			ci.Missing(tb, "patroni (%s): apt-get install -y patroni", bin)
		}
	}
	for _, b := range []string{"initdb", "postgres", "pg_ctl", "pg_basebackup", "pg_rewind"} {
		if _, ok := lookBinary(b, PostgresBinDir); !ok {
			ci.Missing(tb, "PostgreSQL server binaries (%s) in %s: apt-get install -y postgresql", b, PostgresBinDir)
		}
	}
	if len(opts.Nodes) == 0 || opts.Namespace == "" || opts.Kubeconfig == "" || opts.Spec.Name == "" {
		tb.Fatalf("start patroni: need a kubeconfig, a namespace, nodes and a postgresql spec, got %+v", opts)
	}
	cred, err := postgresCredential()
	if err != nil {
		tb.Fatalf("run Patroni as a non-root user: %v", err)
	}
	lockPatroni(tb)
	reapPatroniOrphans(tb)
	kube, admin, err := kubeClient(opts.Kubeconfig)
	if err != nil {
		tb.Fatal(err)
	}
	root := tempDir(tb, "services-patroni-")
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("chown the Patroni directory: %v", err)
		}
	}
	if err := recordPatroniDir(root); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { forgetPatroniDir(root) })

	// The cluster's background work (the kubelet stand-in, the Service
	// watch) outlives the test's context, which is cancelled before the
	// cleanups run, and ends when the cluster is stopped.
	ctx, stopWatch := context.WithCancel(context.WithoutCancel(tb.Context()))
	c := &PatroniCluster{Scope: opts.Spec.Name, Namespace: opts.Namespace, Settings: opts.Spec.Patroni, kube: kube}
	var background sync.WaitGroup
	tb.Cleanup(func() {
		stopWatch()
		background.Wait()
	})

	for i, node := range opts.Nodes {
		m := &PatroniMember{
			Name: fmt.Sprintf("%s-%d", c.Scope, i), Node: node,
			Port: FreePort(tb), APIPort: FreePort(tb),
			Dir: filepath.Join(root, strconv.Itoa(i)), cluster: c,
		}
		if err := os.Mkdir(m.Dir, 0o700); err != nil {
			tb.Fatalf("make the directory of %s: %v", m.Name, err)
		}
		c.Members = append(c.Members, m)
	}
	if err := c.createPods(ctx); err != nil {
		tb.Fatal(err)
	}
	server, err := admin.serverAddr()
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range c.Members {
		m.api, err = startTCPProxy(ctx, m.Name+" API server", func() (string, bool) { return server, true })
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = m.api.Close() })
		if err := admin.writeFor(m.Dir, "https://"+m.api.Addr()); err != nil {
			tb.Fatalf("write the kubeconfig of %s: %v", m.Name, err)
		}
		if err := writePatroniConfig(m, opts); err != nil {
			tb.Fatal(err)
		}
		if cred != nil {
			if err := chownTree(m.Dir, int(cred.Uid), int(cred.Gid)); err != nil {
				tb.Fatalf("hand %s to the postgres user: %v", m.Dir, err)
			}
		}
		m.proc = &process{
			name:    "patroni " + m.Name,
			path:    bin,
			args:    []string{filepath.Join(m.Dir, "patroni.yaml")},
			logPath: filepath.Join(m.Dir, "patroni.log"),
			cred:    cred,
			env:     patroniEnv(m.Dir),
		}
		m.kubelet = newPodReadiness(kube, c.Namespace, m.Name, fmt.Sprintf("http://127.0.0.1:%d/readiness", m.APIPort), m.proc.exited)
		background.Go(func() { m.kubelet.run(ctx) })
	}
	// Stopped after the members (cleanups run last in, first out), so that
	// every member can still reach its Pod and ConfigMaps while it stops.
	tb.Cleanup(func() { c.stopAll(tb) })

	c.service, err = watchPrimaryService(ctx, kube, c.Namespace, c.Scope, c.PodSelector())
	if err != nil {
		tb.Fatal(err)
	}
	background.Go(func() { c.service.run(ctx) })
	if err := c.service.waitSynced(ctx); err != nil {
		tb.Fatal(err)
	}
	c.primary, err = startTCPProxy(ctx, "primary Service", c.pickPrimary)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.primary.Close() })

	// The first member bootstraps the cluster (initdb) and becomes its
	// leader; the others then clone it, as the operator's pods do when
	// they start in order.
	c.Members[0].Start(tb)
	if err := c.waitLeader(ctx, c.Members[0], patroniStartTimeout); err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Members))
	for i, m := range c.Members[1:] {
		wg.Go(func() { errs[i+1] = m.start(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	if err := c.WaitHealthy(ctx, patroniStartTimeout); err != nil {
		tb.Fatal(err)
	}
	return c
}

// patroniEnv is the whole environment of a Patroni process: nothing of the
// test binary's, so that neither PATRONI_* variables of a developer's shell
// nor the KUBERNETES_SERVICE_* of a CI pod (which would make Patroni use
// the in-cluster configuration) reach it.
func patroniEnv(dir string) []string {
	return []string{
		"PATH=/usr/bin:/bin",
		"HOME=" + dir,
		"TMPDIR=" + dir,
		"LANG=C.UTF-8",
		"KUBECONFIG=" + filepath.Join(dir, "kubeconfig"),
	}
}

// writePatroniConfig writes the member's patroni.yaml: the chart's settings
// as Spilo passes them (bootstrap.dcs), the Kubernetes DCS as Spilo
// configures it under the operator, and PostgreSQL on loopback.
func writePatroniConfig(m *PatroniMember, opts PatroniOptions) error {
	s := opts.Spec.Patroni
	params := map[string]any{}
	for k, v := range opts.Spec.Parameters {
		params[k] = v
	}
	cfg := map[string]any{
		"scope": m.cluster.Scope,
		"name":  m.Name,
		"log":   map[string]any{"level": "INFO"},
		"restapi": map[string]any{
			"listen":          fmt.Sprintf("127.0.0.1:%d", m.APIPort),
			"connect_address": fmt.Sprintf("127.0.0.1:%d", m.APIPort),
		},
		"kubernetes": map[string]any{
			"context":       kubeContext,
			"namespace":     m.cluster.Namespace,
			"labels":        map[string]string{"application": "spilo"},
			"scope_label":   "cluster-name",
			"role_label":    "spilo-role",
			"use_endpoints": false,
			"pod_ip":        m.PodIP,
		},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl":                     s.TTL,
				"loop_wait":               s.LoopWait,
				"retry_timeout":           s.RetryTimeout,
				"maximum_lag_on_failover": s.MaximumLagOnFailover,
				"synchronous_mode":        s.SynchronousMode,
				"synchronous_mode_strict": s.SynchronousModeStrict,
				// Spilo's defaults.
				"postgresql": map[string]any{
					"use_pg_rewind": true,
					"use_slots":     true,
					"parameters":    params,
				},
			},
			"initdb": []any{map[string]string{"encoding": "UTF8"}, map[string]string{"locale": "C"}},
		},
		"postgresql": map[string]any{
			"listen":          fmt.Sprintf("127.0.0.1:%d", m.Port),
			"connect_address": fmt.Sprintf("127.0.0.1:%d", m.Port),
			"data_dir":        filepath.Join(m.Dir, "data"),
			"bin_dir":         PostgresBinDir,
			"pgpass":          filepath.Join(m.Dir, "pgpass"),
			"authentication": map[string]any{
				"superuser":   map[string]string{"username": "postgres", "password": "postgres"},
				"replication": map[string]string{"username": "standby", "password": "standby"},
			},
			"pg_hba": []string{
				"host all all 127.0.0.1/32 trust",
				"host replication all 127.0.0.1/32 trust",
			},
			"parameters": map[string]any{
				"unix_socket_directories": m.Dir,
				// Loses nothing when a process is killed, only when the
				// machine crashes, which no test does.
				"fsync": "off",
			},
		},
		"watchdog": map[string]any{"mode": "off"},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode the configuration of %s: %w", m.Name, err)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, "patroni.yaml"), b, 0o600); err != nil {
		return fmt.Errorf("write the configuration of %s: %w", m.Name, err)
	}
	return nil
}

// chownTree gives dir and everything in it to uid:gid.
func chownTree(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// PrimaryAddr is host:port of the primary Service on loopback.
func (c *PatroniCluster) PrimaryAddr() string { return c.primary.Addr() }

// PrimaryDSN is a connection string for database db through the primary
// Service, as user postgres.
func (c *PatroniCluster) PrimaryDSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", c.primary.Addr(), db)
}

// PodSelector selects the cluster's pods, as the operator labels them.
func (c *PatroniCluster) PodSelector() map[string]string {
	return map[string]string{"application": "spilo", "cluster-name": c.Scope}
}

// Member returns the member named name, or nil.
func (c *PatroniCluster) Member(name string) *PatroniMember {
	for _, m := range c.Members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// pickPrimary chooses the member for a new connection to the primary
// Service: one of the Service's ready endpoints at random, as kube-proxy's
// iptables rules do, or none (the connection is refused).
func (c *PatroniCluster) pickPrimary() (string, bool) {
	ready := c.service.ready()
	if len(ready) == 0 {
		return "", false
	}
	m := c.Member(ready[randIndex(len(ready))])
	if m == nil {
		return "", false
	}
	return addr(m.Port), true
}

// ServiceChanges returns every change of the primary Service's ready
// endpoints since the cluster started, oldest first.
func (c *PatroniCluster) ServiceChanges() []EndpointsChange { return c.service.history() }

// stopAll stops every member gracefully at once, killing what does not stop
// in time, and checks that no PostgreSQL is left.
func (c *PatroniCluster) stopAll(tb testing.TB) {
	tb.Helper()
	var wg sync.WaitGroup
	for _, m := range c.Members {
		wg.Go(func() {
			if err := m.stop(patroniStopTimeout); err != nil {
				tb.Errorf("stop %s: %v", m.Name, err)
			}
		})
	}
	wg.Wait()
}

// Start starts the member's Patroni (a stopped or killed one again, on the
// same data directory) and waits until its PostgreSQL runs. Patroni then
// finds its role itself: the leader's lock, if it still holds it, or a
// replica of the current leader (after pg_rewind if it has to).
func (m *PatroniMember) Start(tb testing.TB) {
	tb.Helper()
	if err := m.start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
}

func (m *PatroniMember) start(ctx context.Context) error {
	if err := m.proc.start(); err != nil {
		return err
	}
	m.kubelet.started()
	deadline := time.Now().Add(patroniStartTimeout)
	var last string
	for time.Now().Before(deadline) {
		if m.proc.exited() {
			return fmt.Errorf("%s exited during start-up; end of %s:\n%s", m.proc.name, m.proc.logPath, m.proc.logTail())
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := m.Status(sctx)
		cancel()
		if err == nil && st.State == "running" {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = "state " + st.State
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start %s: %w", m.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: PostgreSQL not running %s after the start (last: %s); end of %s:\n%s", m.proc.name, patroniStartTimeout, last, m.proc.logPath, m.proc.logTail())
}

// Kill crashes the member: SIGKILL to Patroni, to its PostgreSQL and to
// every backend, at once, as when the container's processes are killed. The
// Pod object stays (with whatever role label it had) and is not Ready from
// this moment, as the kubelet reports a container that died. Start brings
// the member back.
func (m *PatroniMember) Kill(tb testing.TB) {
	tb.Helper()
	pids := []int{}
	if pm := m.postmasterPID(); pm != 0 {
		pids = append(append(pids, pm), childPIDs(pm)...)
	}
	if p := m.proc.pid(); p != 0 {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := m.proc.signal(syscall.SIGKILL, 10*time.Second); err != nil {
		tb.Fatal(err)
	}
	m.kubelet.stopped()
	if err := waitGone(pids, 10*time.Second); err != nil {
		tb.Fatalf("kill %s: %v", m.Name, err)
	}
}

// Stop stops the member gracefully: SIGTERM to Patroni, which shuts its
// PostgreSQL down (fast mode), gives up the leader lock if it held it and
// clears its role label, then exits; what the kubelet does when Chaos
// Mesh's pod-failure replaces the container. The Pod is not Ready once the
// processes are gone.
func (m *PatroniMember) Stop(tb testing.TB) {
	tb.Helper()
	if err := m.stop(patroniStopTimeout); err != nil {
		tb.Fatal(err)
	}
}

func (m *PatroniMember) stop(wait time.Duration) error {
	pm := m.postmasterPID()
	err := m.proc.signal(syscall.SIGTERM, wait)
	m.kubelet.stopped()
	if pm != 0 {
		// What outlives Patroni is killed with the container.
		pids := append([]int{pm}, childPIDs(pm)...)
		leftover := slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return !running(p) })
		for _, pid := range leftover {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(leftover) > 0 {
			err = errors.Join(err, fmt.Errorf("PostgreSQL of %s (pids %v) still ran after Patroni stopped, killed", m.Name, leftover))
		}
		err = errors.Join(err, waitGone(pids, 10*time.Second))
	}
	return err
}

// Isolate cuts the member off the Kubernetes API, and so from the DCS: its
// open connections to the API server end and new ones are dropped, while
// the other members and the clients still reach its PostgreSQL and REST
// API, and the kubelet still reports its Pod. Heal restores the path.
func (m *PatroniMember) Isolate() { m.api.Cut() }

// Heal restores the member's path to the Kubernetes API after Isolate.
func (m *PatroniMember) Heal() { m.api.Restore() }

// Running reports whether the member's Patroni process runs.
func (m *PatroniMember) Running() bool { return m.proc.pid() != 0 && !m.proc.exited() }

// PatroniPID is the PID of the member's Patroni, 0 when it is stopped.
func (m *PatroniMember) PatroniPID() int { return m.proc.pid() }

// LogTail is the end of the member's log (Patroni's and PostgreSQL's).
func (m *PatroniMember) LogTail() string { return m.proc.logTail() }

// postmasterPID reads the PID of the member's running postmaster from its
// postmaster.pid, checking that the process is a postgres of this data
// directory; 0 when none runs. Patroni starts PostgreSQL in a session of its
// own that is not its child, so it is found there, not by parent PID.
func (m *PatroniMember) postmasterPID() int {
	return postmasterOf(filepath.Join(m.Dir, "data"))
}

func postmasterOf(dataDir string) int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 || !running(pid) {
		return 0
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || !bytes.Contains(cmdline, []byte(dataDir)) {
		return 0
	}
	return pid
}

// waitGone waits until none of pids runs.
func waitGone(pids []int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for _, p := range pids {
		for running(p) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d still runs %s after it was killed", p, wait)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// PatroniStatus is a member's own view, GET /patroni on its REST API.
type PatroniStatus struct {
	// State is PostgreSQL's state as Patroni sees it: running, starting,
	// stopped, crashed, ...
	State string `json:"state"`
	// Role is master or replica (PostgreSQL in recovery or not).
	Role string `json:"role"`
	// Timeline is the member's timeline.
	Timeline int `json:"timeline"`
	// Replication lists the standbys streaming from a primary.
	Replication []struct {
		ApplicationName string `json:"application_name"`
		State           string `json:"state"`
		SyncState       string `json:"sync_state"`
	} `json:"replication"`
	// ClusterUnlocked is set when the member sees no leader.
	ClusterUnlocked bool `json:"cluster_unlocked"`
}

// Status asks the member's REST API for its state.
func (m *PatroniMember) Status(ctx context.Context) (PatroniStatus, error) {
	var st PatroniStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/patroni", m.APIPort), nil)
	if err != nil {
		return st, fmt.Errorf("ask %s: %w", m.Name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("ask %s: %w", m.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	// 503 still carries the status document (a replica, a stopped server).
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decode the status of %s (HTTP %d): %w", m.Name, resp.StatusCode, err)
	}
	return st, nil
}

// waitLeader waits until m holds the leader lock and runs as primary.
func (c *PatroniCluster) waitLeader(ctx context.Context, m *PatroniMember, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if m.proc.exited() {
			return fmt.Errorf("%s exited; end of %s:\n%s", m.proc.name, m.proc.logPath, m.proc.logTail())
		}
		lock, err := c.LeaderLock(ctx)
		st, serr := m.Status(ctx)
		if err == nil && serr == nil && lock.Holder == m.Name && st.Role == "master" && st.State == "running" {
			return nil
		}
		last = fmt.Sprintf("lock %+v (%v), status %+v (%v)", lock, err, st, serr)
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s did not become leader within %s (last: %s); end of %s:\n%s", m.Name, timeout, last, m.proc.logPath, m.proc.logTail())
}

// WaitHealthy waits until the cluster is back in its steady state: every
// member's Patroni runs, one holds the leader lock and runs as primary with
// every other member streaming from it (in synchronous mode one of them
// synchronous, and recorded so in Patroni's synchronous state, which is
// what makes it a failover target), every Pod is Ready with the role label
// of its member, and the primary Service's only ready endpoint is the
// leader.
func (c *PatroniCluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = c.healthy(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a healthy Patroni cluster: %w (last: %w)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
	tails := []string{}
	for _, m := range c.Members {
		tails = append(tails, fmt.Sprintf("end of %s:\n%s", m.proc.logPath, m.proc.logTail()))
	}
	return fmt.Errorf("the Patroni cluster is not healthy after %s: %w\n%s", timeout, last, strings.Join(tails, "\n"))
}

func (c *PatroniCluster) healthy(ctx context.Context) error {
	for _, m := range c.Members {
		if !m.Running() {
			return fmt.Errorf("%s does not run", m.Name)
		}
	}
	lock, err := c.LeaderLock(ctx)
	if err != nil {
		return err
	}
	leader := c.Member(lock.Holder)
	if leader == nil {
		return fmt.Errorf("no member holds the leader lock (%+v)", lock)
	}
	st, err := leader.Status(ctx)
	if err != nil {
		return err
	}
	if st.Role != "master" || st.State != "running" {
		return fmt.Errorf("leader %s: role %s, state %s", leader.Name, st.Role, st.State)
	}
	streaming, sync := 0, 0
	for _, r := range st.Replication {
		if r.State == "streaming" {
			streaming++
		}
		if r.SyncState == "sync" {
			sync++
		}
	}
	if streaming != len(c.Members)-1 {
		return fmt.Errorf("leader %s: %d of %d replicas streaming (%+v)", leader.Name, streaming, len(c.Members)-1, st.Replication)
	}
	if c.Settings.SynchronousMode {
		if sync == 0 {
			return fmt.Errorf("leader %s: no synchronous standby yet (%+v)", leader.Name, st.Replication)
		}
		// PostgreSQL reports a synchronous standby a loop before Patroni
		// records it; until then no member may be promoted, and a fault
		// on the leader would find no failover target.
		ss, err := c.SyncState(ctx)
		if err != nil {
			return err
		}
		if ss.Leader != leader.Name || len(ss.Standbys) == 0 {
			return fmt.Errorf("leader %s: Patroni's synchronous state %+v names no standby of it yet", leader.Name, ss)
		}
	}
	pods, err := c.pods(ctx)
	if err != nil {
		return err
	}
	for _, m := range c.Members {
		want := "replica"
		if m == leader {
			want = "master"
		}
		p, ok := pods[m.Name]
		switch {
		case !ok:
			return fmt.Errorf("pod %s is missing", m.Name)
		case p.role != want:
			return fmt.Errorf("pod %s: spilo-role %q, want %q", m.Name, p.role, want)
		case !p.ready:
			return fmt.Errorf("pod %s is not Ready", m.Name)
		}
	}
	if ready := c.service.ready(); !slices.Equal(ready, []string{leader.Name}) {
		return fmt.Errorf("primary Service endpoints %v, want only the leader %s", ready, leader.Name)
	}
	return nil
}
