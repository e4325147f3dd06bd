package lab_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/jewelry-shop/lab/charts"
	"github.com/jewelry-shop/lab/internal/controlplane"
	"github.com/jewelry-shop/lab/internal/services"
	"github.com/jewelry-shop/lab/lab"
	observe "github.com/jewelry-shop/lab/lab/internal/kube"
	"github.com/jewelry-shop/lab/lab/judge"
	"github.com/jewelry-shop/lab/lab/measure"
	"github.com/jewelry-shop/lab/shop"
	"github.com/jewelry-shop/lab/shop/probe"
	"github.com/jewelry-shop/lab/shop/probeapi"
)

// failoverRunsEnv sets how many times TestPatroniFailover runs each fault
// (make bench-failover sets 5); unset means once.
const failoverRunsEnv = "LAB_FAILOVER_RUNS"

// patroniFault is one way of taking the PostgreSQL primary down.
type patroniFault struct {
	name string
	// what the fault stands for in the cluster.
	what string
	// inject takes the leader down; heal brings it back once another
	// member leads (and, for a fault held longer than ttl, ttl passed).
	inject, heal func(t *testing.T, leader *services.PatroniMember)
	// holdPastTTL keeps the fault at least the ttl long, as the lab's
	// PodChaos does: a primary back before its lock expired keeps it.
	holdPastTTL bool
}

func patroniFaults() []patroniFault {
	return []patroniFault{
		{
			name: "crash", what: "SIGKILL of Patroni, PostgreSQL and every backend; down until another member leads and ttl passed",
			inject:      func(t *testing.T, m *services.PatroniMember) { t.Helper(); m.Kill(t) },
			heal:        func(t *testing.T, m *services.PatroniMember) { t.Helper(); m.Start(t) },
			holdPastTTL: true,
		},
		{
			name: "isolate", what: "the leader's connections to the API server (its DCS) cut; until another member leads and ttl passed",
			inject:      func(_ *testing.T, m *services.PatroniMember) { m.Isolate() },
			heal:        func(_ *testing.T, m *services.PatroniMember) { m.Heal() },
			holdPastTTL: true,
		},
		{
			name: "graceful", what: "SIGTERM to Patroni (Chaos Mesh pod-failure: the kubelet stops the container); down until another member leads",
			inject: func(t *testing.T, m *services.PatroniMember) { t.Helper(); m.Stop(t) },
			heal:   func(t *testing.T, m *services.PatroniMember) { t.Helper(); m.Start(t) },
		},
	}
}

// TestPatroniFailover takes the primary of a real Patroni cluster down in
// each way a fault can (crash, isolation from the DCS, graceful stop) while
// the shop's prober writes through the primary Service every 100 ms, as in
// the cluster. For each fault it asserts what lab validate would judge: a
// new leader (by lab's own leader detection, the spilo-role label), the RTO
// that lab's measurement computes from the prober's writes below the R29
// threshold, and no acknowledged write lost with synchronous mode on. The
// Patroni settings are the chart's.
func TestPatroniFailover(t *testing.T) {
	runs := 1
	if v := os.Getenv(failoverRunsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 20 {
			t.Fatalf("%s=%q: want a number of runs from 1 to 20", failoverRunsEnv, v)
		}
		runs = n
	}
	env := controlplane.Start(t, controlplane.Options{Nodes: true})
	ns := env.Namespace(t)
	spec, dsnOptions := chartStack(t)
	st := spec.Patroni
	t.Logf("the chart's Patroni settings: ttl %ds, loop_wait %ds, retry_timeout %ds, maximum_lag_on_failover %d, synchronous_mode %t (strict %t); PostgreSQL %s here, %s in the chart",
		st.TTL, st.LoopWait, st.RetryTimeout, st.MaximumLagOnFailover, st.SynchronousMode, st.SynchronousModeStrict, services.PostgresVersion, spec.Version)
	c := services.StartPatroni(t, services.PatroniOptions{Kubeconfig: env.Kubeconfig, Namespace: ns, Nodes: env.Nodes(), Spec: spec})
	kube, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	p := startProber(t, c, dsnOptions)
	t.Logf("the prober writes through the primary Service (127.0.0.1 here) with the chart's connection options %q", dsnOptions)
	th := lab.DefaultThresholds()
	const sustain = 5 * time.Second // lab validate's default (RunnerConfig.Sustain)

	results := map[string][]faultResult{}
	var checked time.Time // writes sent before were verified by an earlier fault
	for _, f := range patroniFaults() {
		for run := 1; run <= runs; run++ {
			measured := false
			t.Run(fmt.Sprintf("%s/%d", f.name, run), func(t *testing.T) {
				r := runPatroniFault(t, c, kube, p, f, sustain, checked)
				measured, checked = true, r.end
				results[f.name] = append(results[f.name], r)
				if r.before == r.after {
					t.Errorf("%s: %s led before and after: restart in place, no failover", f.name, r.before)
				}
				if v := r.rec.Below(th.Failover); v.Status != measure.Pass {
					t.Errorf("%s: R29 %s", f.name, v.Reason)
				}
				if st.SynchronousMode && len(r.lost) > 0 {
					t.Errorf("%s: %d acknowledged writes lost with synchronous_mode on: %v", f.name, len(r.lost), r.lost)
				}
			})
			if !measured {
				// A fault that could not be carried out leaves the
				// cluster in a state that would spoil the next ones.
				t.FailNow()
			}
		}
	}
	for _, f := range patroniFaults() {
		t.Log(resultLine(f.name, results[f.name]))
	}
}

// faultResult is what one fault measured.
type faultResult struct {
	before, after string // the pod lab saw as primary
	rec           measure.Recovery
	leaderSeen    measure.Recovery
	// lost are the acknowledged writes missing in the read-back that were
	// sent from checked on (zero: since the prober started).
	lost []int64
	// end is where the next fault's count of lost writes starts.
	end time.Time
}

// resultLine is the RESULT line of a fault's runs (make bench-failover).
func resultLine(fault string, rs []faultResult) string {
	var rtos []time.Duration
	lost := 0
	for _, r := range rs {
		if r.rec.RTO.Known {
			rtos = append(rtos, r.rec.RTO.V)
		}
		lost += len(r.lost)
	}
	slices.Sort(rtos)
	p50, worst := "unknown", "unknown"
	if n := len(rtos); n > 0 {
		med := rtos[n/2]
		if n%2 == 0 {
			med = (rtos[n/2-1] + rtos[n/2]) / 2
		}
		p50, worst = fmt.Sprintf("%.1f", med.Seconds()), fmt.Sprintf("%.1f", rtos[n-1].Seconds())
	}
	if len(rtos) < len(rs) {
		worst = fmt.Sprintf("unknown(%d of %d without recovery)", len(rs)-len(rtos), len(rs))
	}
	return fmt.Sprintf("RESULT fault=%s runs=%d rto_p50_s=%s rto_max_s=%s lost=%d", fault, len(rs), p50, worst, lost)
}

// runPatroniFault injects one fault on the current leader, holds it, heals
// it, waits for the cluster to be healthy again and measures. Lost writes
// are counted among those sent from checked on.
func runPatroniFault(t *testing.T, c *services.PatroniCluster, kube kubernetes.Interface, p *probe.Prober, f patroniFault, sustain time.Duration, checked time.Time) faultResult {
	t.Helper()
	ctx := t.Context()
	ttl := time.Duration(c.Settings.TTL) * time.Second
	if err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	before, err := observe.PostgresPrimary(ctx, kube, c.Namespace, c.PodSelector())
	if err != nil {
		t.Fatal(err)
	}
	old := c.Member(before)
	if old == nil {
		t.Fatalf("lab names %s the primary, which is no member", before)
	}
	lockBefore, err := c.LeaderLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if lockBefore.Holder != before {
		t.Fatalf("lab sees %s as primary, Patroni's lock names %s", before, lockBefore.Holder)
	}

	syncBefore, err := c.SyncState(ctx)
	if err != nil {
		t.Fatal(err)
	}

	watch := watchLeader(ctx, kube, c)
	injectedAt := time.Now()
	f.inject(t, old)
	t.Logf("%s: %s on %s at %s", f.name, f.what, before, injectedAt.Format(time.StampMilli))

	// Hold until another member holds the lock (and past ttl when asked).
	limit := injectedAt.Add(ttl + 2*time.Duration(c.Settings.LoopWait+c.Settings.RetryTimeout)*time.Second + 30*time.Second)
	var lock services.PatroniLock
	for {
		lock, err = c.LeaderLock(ctx)
		newLeader := err == nil && lock.Holder != "" && lock.Holder != before
		if newLeader && (!f.holdPastTTL || time.Since(injectedAt) > ttl) {
			break
		}
		if time.Now().After(limit) {
			var tails []string
			for _, m := range c.Members {
				tails = append(tails, fmt.Sprintf("end of the log of %s:\n%s", m.Name, m.LogTail()))
			}
			t.Fatalf("%s: no other member took the lock within %s (last: %+v, %v; synchronous state before the fault %+v)\n%s",
				f.name, limit.Sub(injectedAt), lock, err, syncBefore, strings.Join(tails, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	healAt := time.Now()
	f.heal(t, old)
	// Until the new leader records a synchronous standby, no member may be
	// promoted: a second fault then would get no failover.
	var syncAt time.Time
	for limit := time.Now().Add(2 * time.Minute); time.Now().Before(limit); time.Sleep(100 * time.Millisecond) {
		if ss, err := c.SyncState(ctx); err == nil && ss.Leader == lock.Holder && len(ss.Standbys) > 0 {
			syncAt = time.Now()
			break
		}
	}
	if err := c.WaitHealthy(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	// The prober's recovery must be sustained within the data: usually it
	// is by the time the cluster is healthy again, else wait for it.
	for wait := time.Now().Add(sustain + 2*time.Second); time.Now().Before(wait); time.Sleep(200 * time.Millisecond) {
		st := p.Timeline(true).Stores[probeapi.StorePostgres]
		if measure.Recover(measure.Between(judge.ProberSamples(st), measure.Window{Start: injectedAt, End: time.Now()}), injectedAt, sustain).RTO.Known {
			break
		}
	}
	end := time.Now()
	leaderObs := watch.stop()

	after, err := observe.PostgresPrimary(ctx, kube, c.Namespace, c.PodSelector())
	if err != nil {
		t.Fatal(err)
	}
	// A write still in flight when the read-back starts is checked by the
	// next fault's read-back: the verification covers every write so far.
	verifyFrom := time.Now().Add(-probe.DefaultConfig().WriteTimeout)
	v := p.Verify(ctx)
	pv := v.Stores[probeapi.StorePostgres]
	if pv.Error != "" {
		t.Fatalf("verify the prober's writes: %s", pv.Error)
	}
	tl := p.Timeline(true).Stores[probeapi.StorePostgres]
	horizon := measure.Window{Start: injectedAt, End: end}
	sent := map[int64]time.Time{}
	for _, s := range tl.Samples {
		sent[s.Seq] = s.Sent
	}
	r := faultResult{before: before, after: after, lost: []int64{}, end: verifyFrom}
	for _, seq := range pv.Missing {
		if !sent[seq].Before(checked) {
			r.lost = append(r.lost, seq)
		}
	}
	r.rec = measure.Recover(measure.Between(judge.ProberSamples(tl), horizon), injectedAt, sustain)
	r.leaderSeen = measure.Recover(measure.Between(leaderObs.samples(before), horizon), injectedAt, sustain)

	since := func(at time.Time) string {
		if at.IsZero() {
			return "never"
		}
		return at.Sub(injectedAt).Round(10 * time.Millisecond).String()
	}
	t.Logf("%s: new leader %s took the lock at +%s (lock transitions %d -> %d; synchronous standbys before %v); fault healed at +%s; new synchronous standby recorded at +%s",
		f.name, lock.Holder, since(lock.AcquireTime), lockBefore.Transitions, lock.Transitions, syncBefore.Standbys, since(healAt), since(syncAt))
	if c.Settings.SynchronousMode && !slices.Contains(syncBefore.Standbys, lock.Holder) {
		t.Errorf("%s: %s took over, but Patroni's synchronous standbys were %v", f.name, lock.Holder, syncBefore.Standbys)
	}
	for _, ch := range c.ServiceChanges() {
		if horizon.Contains(ch.At) {
			t.Logf("%s: primary Service endpoints at +%s: %v", f.name, since(ch.At), ch.Ready)
		}
	}
	t.Logf("%s: lab's leader detection (spilo-role=master): %s; first seen %s alone at +%s, sustained (RTO by the label) %s",
		f.name, leaderObs.summary(), after, since(leaderObs.firstAlone(before)), rtoText(r.leaderSeen))
	t.Logf("%s: prober: first failed write at +%s, %d failed, recovered at +%s: RTO %s; %d acknowledged writes checked, lost %v, duplicated %d, unacknowledged but present %d",
		f.name, since(r.rec.FirstError), r.rec.Failures, since(r.rec.RecoveredAt), rtoText(r.rec), pv.Acked, r.lost, len(pv.Duplicates), len(pv.UnackedPresent))
	var errs []string
	for _, s := range tl.Samples {
		if s.Error != "" && horizon.Contains(s.Sent) {
			errs = append(errs, s.Error)
		}
	}
	if len(errs) > 0 {
		outs := measure.Outages(measure.Between(judge.ProberSamples(tl), horizon))
		t.Logf("%s: %d outage(s) in the prober's writes; first error %q, last %q", f.name, len(outs), errs[0], errs[len(errs)-1])
	}
	return r
}

func rtoText(r measure.Recovery) string {
	if r.RTO.Known {
		return r.RTO.V.Round(10 * time.Millisecond).String()
	}
	return "unknown: " + r.RTO.Reason
}

// startProber runs the shop's prober, writing through the cluster's primary
// Service with the configuration the chart gives it: the chart's connection
// options, the defaults otherwise.
func startProber(t *testing.T, c *services.PatroniCluster, dsnOptions string) *probe.Prober {
	t.Helper()
	rdb := services.StartRedis(t) // the prober writes to both stores
	host, port, err := net.SplitHostPort(c.PrimaryAddr())
	if err != nil {
		t.Fatal(err)
	}
	pgc := shop.DefaultPostgresConfig()
	pgc.DSN = fmt.Sprintf("host=%s port=%s dbname=postgres user=postgres %s", host, port, dsnOptions)
	rc := shop.DefaultRedisConfig()
	rc.Addr, rc.MaxRetries = rdb.Addr(), -1 // as cmd/shop configures probe mode
	ctx, stop := context.WithCancel(context.WithoutCancel(t.Context()))
	var running sync.WaitGroup
	t.Cleanup(func() {
		stop()
		running.Wait()
	})
	pool, err := shop.OpenPostgres(ctx, pgc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rcl, err := shop.OpenRedis(rc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcl.Close() })
	p := probe.New(probe.DefaultConfig(), pool, rcl, nil)
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	running.Go(func() { p.Probe(ctx) })
	return p
}

// chartStack renders the jewelry-shop chart as lab up installs it (the
// quick profile's values) and returns its postgresql resource and the
// libpq options of the prober's connection string: SHOP_PG_DSN of the probe
// Deployment without host, port and dbname, which only name the primary
// Service and the database in the cluster.
func chartStack(t *testing.T) (services.PostgresqlSpec, string) {
	t.Helper()
	c, err := charts.LoadJewelryShop()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := charts.JewelryShop("quick", "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := charts.Render(t.Context(), c, rel)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := r.Objects()
	if err != nil {
		t.Fatal(err)
	}
	var spec *services.PostgresqlSpec
	dsn := ""
	for _, o := range objs {
		switch {
		case o.GetKind() == "postgresql":
			s, err := services.ParsePostgresql(o.Object)
			if err != nil {
				t.Fatalf("the chart's postgresql resource: %v", err)
			}
			spec = &s
		case o.GetKind() == "Deployment" && o.GetLabels()["app.kubernetes.io/component"] == "probe":
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &d); err != nil {
				t.Fatalf("decode the probe Deployment: %v", err)
			}
			for _, ctr := range d.Spec.Template.Spec.Containers {
				for _, e := range ctr.Env {
					if e.Name == "SHOP_PG_DSN" {
						dsn = e.Value
					}
				}
			}
		}
	}
	if spec == nil || dsn == "" {
		t.Fatalf("the chart renders no postgresql resource (%v) or no SHOP_PG_DSN for the prober (%q)", spec != nil, dsn)
	}
	var opts []string
	for _, kv := range strings.Fields(dsn) {
		k, _, _ := strings.Cut(kv, "=")
		if k != "host" && k != "port" && k != "dbname" {
			opts = append(opts, kv)
		}
	}
	return *spec, strings.Join(opts, " ")
}
