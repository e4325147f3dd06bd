package app

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jewelry-shop/lab/load"
	"github.com/spf13/cobra"
)

// loadFlags are the flags of `lab load`.
type loadFlags struct {
	target       string
	allowHosts   []string
	scenario     string
	printDefault bool
	model        string
	users        int
	spawnRate    float64
	rate         float64
	stages       []string
	maxInFlight  int
	duration     time.Duration
	maxRequests  int64
	timeout      time.Duration
	maxConns     int
	think        string
	thresholds   []string
	seed         uint64
	jsonPath     string
}

func newLoadCmd(o *options) *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Run the load generator on its own against the shop",
		Long: `Run a load scenario against the shop and print per-endpoint figures: requests,
failures by class, p50/p95/p99 latency (corrected for coordinated omission and
raw), and whether the generator kept up.

Two models: closed (--users virtual users spawned at --spawn-rate, each with
think time between steps) and open (--rate iterations per second, optionally
ramping with --stage, whatever the target does). A flag of the other model is
refused, not ignored.

The target defaults to the lab's own ingress; loopback is always allowed, any
other host needs --allow-host. Every run is bounded by --duration and
--max-requests, and holds at most ` + strconv.Itoa(load.MaxUsers) + ` users or iterations in flight
(load.MaxUsers). Thresholds come from the scenario and --threshold; a latency
threshold is not measured, and fails, when no request succeeded. lab load
exits with 1 when a threshold fails or no request succeeded (the summary then
says the target is down), and with 2 when the flags cannot make a run.`,
		Example: `  lab load --users 100 --duration 2m
  lab load --model open --rate 200 --stage 1m:500 --duration 3m --threshold 'p99 < 1s'
  lab load --target http://127.0.0.1:8000 --scenario my-shop.yaml --json result.json
  lab load --print-scenario > my-shop.yaml`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.printDefault {
				_, err := o.streams.Out.Write(load.DefaultScenarioYAML())
				return err
			}
			if err := o.setup(cmd); err != nil {
				return err
			}
			opts, err := f.options(cmd, o)
			if err != nil {
				return err
			}
			return runLoad(cmd, o, f, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.target, "target", "", "base URL of the shop (default: the lab's ingress, http://cluster.ingressHost:cluster.ingressPort)")
	fl.StringSliceVar(&f.allowHosts, "allow-host", nil, "also allow this non-loopback host as a target (repeatable; * allows any)")
	fl.StringVar(&f.scenario, "scenario", "", "scenario file (YAML; default: the built-in jewelry-shop scenario)")
	fl.BoolVar(&f.printDefault, "print-scenario", false, "print the built-in scenario and exit")
	fl.StringVar(&f.model, "model", string(load.Closed), "closed (virtual users) or open (arrival rate)")
	fl.IntVar(&f.users, "users", 10, "closed model: virtual users")
	fl.Float64Var(&f.spawnRate, "spawn-rate", 10, "closed model: users started per second (0: all at once)")
	fl.Float64Var(&f.rate, "rate", 50, "open model: behaviour iterations started per second")
	fl.StringSliceVar(&f.stages, "stage", nil, "open model: ramp to a rate over a time, DURATION:RATE (repeatable, in order)")
	fl.IntVar(&f.maxInFlight, "max-in-flight", 5000, "open model: most iterations in flight; arrivals beyond are dropped and reported")
	fl.DurationVar(&f.duration, "duration", time.Minute, "how long to send")
	fl.Int64Var(&f.maxRequests, "max-requests", 10_000_000, "stop after this many requests")
	fl.DurationVar(&f.timeout, "timeout", 10*time.Second, "timeout of each request")
	fl.IntVar(&f.maxConns, "max-conns", 0, "most connections to the target (0: no limit); connections are kept alive")
	fl.StringVar(&f.think, "think", "", "replace the scenario's think time: DURATION or MIN-MAX, e.g. 0 or 500ms-1.5s")
	fl.StringArrayVar(&f.thresholds, "threshold", nil, "pass criterion such as 'p95 < 2s', 'error_rate < 1%', 'p99{checkout} < 3s' (repeatable)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the users' random choices")
	fl.StringVar(&f.jsonPath, "json", "", "write every figure as JSON to this file (- for standard output; the summary then goes to standard error)")
	return cmd
}

// options turns the flags into the load generator's options. Every problem
// of the flags is reported at once, each with its fix, as a usage error:
// nothing is sent until they all make sense.
func (f loadFlags) options(cmd *cobra.Command, o *options) (load.Options, error) {
	cl := o.cfg.Cluster
	changed := cmd.Flags().Changed
	ingress := fmt.Sprintf("http://%s:%d", cl.IngressHost, cl.IngressPort)
	target := f.target
	if target == "" {
		target = ingress
	}
	opts := load.Options{
		Target:      target,
		AllowHosts:  append([]string{cl.IngressHost}, f.allowHosts...),
		Model:       load.Model(f.model),
		Users:       f.users,
		SpawnRate:   f.spawnRate,
		Rate:        f.rate,
		MaxInFlight: f.maxInFlight,
		Duration:    f.duration,
		MaxRequests: f.maxRequests,
		Timeout:     f.timeout,
		MaxConns:    f.maxConns,
		Seed:        f.seed,
		Logger:      o.log,
	}
	var ps []problem
	bad := func(fix, format string, args ...any) {
		ps = append(ps, problem{what: fmt.Sprintf(format, args...), fix: fix})
	}
	if changed("target") && strings.TrimSpace(f.target) == "" {
		bad(fmt.Sprintf("leave --target out to send to the lab's ingress (%s), or pass a URL such as http://127.0.0.1:8000", ingress), "--target is empty")
	} else if p := checkTarget(target, opts.AllowHosts); p != nil {
		ps = append(ps, *p)
	}
	// A flag of the other model would be ignored without a word.
	modelFlags := map[load.Model][]string{load.Closed: {"users", "spawn-rate"}, load.Open: {"rate", "stage", "max-in-flight"}}
	for _, m := range []load.Model{load.Closed, load.Open} {
		if m == opts.Model || (opts.Model != load.Closed && opts.Model != load.Open) {
			continue
		}
		for _, name := range modelFlags[m] {
			if changed(name) {
				bad(fmt.Sprintf("--model %s, or leave --%s out", m, name), "--%s is a flag of the %s model, and this run uses the %s model", name, m, opts.Model)
			}
		}
	}
	switch opts.Model {
	case load.Closed:
		switch {
		case f.users < 1:
			bad("--users 10", "--users %d: the closed model needs at least 1 user", f.users)
		case f.users > load.MaxUsers:
			bad(fmt.Sprintf("--users %d or fewer; for more, split the load over several lab load processes or machines", load.MaxUsers),
				"--users %d is above the load generator's limit of %d users (load.MaxUsers), which bounds its memory and connections", f.users, load.MaxUsers)
		}
		if !finite(f.spawnRate) || f.spawnRate < 0 {
			bad("--spawn-rate 10 (users started per second), or --spawn-rate 0 to start them all at once", "--spawn-rate %v: must be 0 or a positive number of users per second", f.spawnRate)
		}
	case load.Open:
		if !finite(f.rate) || f.rate < 0 {
			bad("--rate 50 (iterations started per second)", "--rate %v: must be a positive number of iterations per second", f.rate)
		}
		if f.maxInFlight < 1 || f.maxInFlight > load.MaxUsers {
			bad(fmt.Sprintf("--max-in-flight 5000 (the default); at most %d", load.MaxUsers),
				"--max-in-flight %d: must be between 1 and the load generator's limit of %d (load.MaxUsers)", f.maxInFlight, load.MaxUsers)
		}
	default:
		bad("--model closed (virtual users) or --model open (arrival rate)", "--model %q is not a load model", f.model)
	}
	if f.duration <= 0 {
		bad("--duration 1m", "--duration %s: must be positive: every run is bounded in time", f.duration)
	}
	if f.maxRequests < 1 {
		bad("--max-requests 10000000 (the default), or leave it out", "--max-requests %d: must be at least 1: every run is bounded in requests", f.maxRequests)
	}
	if f.timeout <= 0 {
		bad("--timeout 10s (the default), or leave it out", "--timeout %s: must be positive: every request is bounded in time", f.timeout)
	}
	if f.maxConns < 0 {
		bad("--max-conns 0 for no limit, or a positive number of connections", "--max-conns %d cannot be negative", f.maxConns)
	}
	opts.Scenario = load.DefaultScenario()
	if f.scenario != "" {
		data, err := os.ReadFile(f.scenario)
		if err == nil {
			opts.Scenario, err = load.ParseScenario(data)
		}
		if err != nil {
			bad("correct the scenario; lab load --print-scenario > my-shop.yaml writes the built-in one to start from", "--scenario %s: %v", f.scenario, err)
		}
	}
	peak := f.rate
	for _, s := range f.stages {
		d, r, ok := strings.Cut(s, ":")
		dur, err1 := time.ParseDuration(d)
		rate, err2 := strconv.ParseFloat(r, 64)
		if !ok || err1 != nil || err2 != nil || dur < 0 || rate < 0 || !finite(rate) {
			bad("--stage 30s:200 ramps to 200 iterations per second over 30 seconds", "--stage %q is not DURATION:RATE with both at least 0", s)
			continue
		}
		peak = max(peak, rate)
		opts.Stages = append(opts.Stages, load.Stage{Duration: dur, Rate: rate})
	}
	if opts.Model == load.Open && finite(f.rate) && f.rate >= 0 && peak <= 0 {
		bad("--rate 50, or a --stage that ramps to a rate above 0", "--rate %v: the open model needs a rate above 0 at some point", f.rate)
	}
	if f.think != "" {
		lo, hi, ok := strings.Cut(f.think, "-")
		if !ok {
			hi = lo
		}
		a, err1 := parseThink(lo)
		b, err2 := parseThink(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a {
			bad("--think 0, or --think 500ms-1.5s", "--think %q is not DURATION or MIN-MAX", f.think)
		} else {
			opts.Think = &load.ThinkTime{Min: a, Max: b}
		}
	}
	for _, s := range f.thresholds {
		t, err := load.ParseThreshold(s)
		if err != nil {
			bad("--threshold 'p95 < 2s', or 'error_rate < 1%', or 'p99{checkout} < 3s'", "--threshold: %v", err)
			continue
		}
		opts.Thresholds = append(opts.Thresholds, t)
	}
	return opts, problemsError("lab load", ps)
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func parseThink(s string) (time.Duration, error) {
	if s = strings.TrimSpace(s); s == "0" {
		return 0, nil
	}
	return time.ParseDuration(s)
}

// checkTarget says what is wrong with a target URL, in the flag's terms.
func checkTarget(target string, allow []string) *problem {
	if !strings.Contains(target, "://") {
		return &problem{
			what: fmt.Sprintf("--target %q needs a scheme", target),
			fix:  "--target http://" + strings.TrimPrefix(target, "//"),
		}
	}
	_, err := load.CheckTarget(target, allow)
	var he *load.HostNotAllowedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he):
		return &problem{
			what: fmt.Sprintf("--target host %q is neither loopback nor the lab's ingress: lab load sends load only where it is told it may", he.Host),
			fix:  fmt.Sprintf("--allow-host %s, if you mean it", he.Host),
		}
	}
	fix := "--target http://127.0.0.1:8000"
	if u, perr := url.Parse(target); perr == nil && u.Host != "" {
		fix = "--target http://" + u.Host + u.RequestURI()
		fix = strings.TrimSuffix(fix, "/")
	}
	return &problem{what: fmt.Sprintf("--target %q must be an http:// or https:// URL with a host", target), fix: fix}
}

// runLoad runs the load, shows progress, prints the summary (and JSON) and
// fails when a threshold fails.
func runLoad(cmd *cobra.Command, o *options, f loadFlags, opts load.Options) error {
	summary, jsonOut := o.streams.Out, io.Writer(nil)
	switch f.jsonPath {
	case "":
	case "-":
		summary, jsonOut = o.streams.Err, o.streams.Out
	default:
		file, err := os.Create(f.jsonPath)
		if err != nil {
			return fmt.Errorf("create JSON output: %w", err)
		}
		defer file.Close()
		jsonOut = file
	}
	view := o.progress()
	view.Start(fmt.Sprintf("load %s (%s model, %s)", opts.Target, opts.Model, opts.Duration))
	opts.OnProgress = func(p load.Progress) { view.Update(load.FormatProgress(p)) }
	res, err := load.Run(cmd.Context(), opts)
	if err != nil {
		view.End(err)
		var oe *load.OptionsError
		if errors.As(err, &oe) { // the flags were checked; the scenario may still refuse
			return usageError{fmt.Errorf("%w\n  fix: see `lab load --help`", err)}
		}
		return err
	}
	verdict := loadVerdict(res)
	view.End(verdict)
	if err := load.WriteSummary(summary, res); err != nil {
		return err
	}
	if jsonOut != nil {
		if err := load.WriteJSON(jsonOut, res); err != nil {
			return err
		}
	}
	return verdict
}

// loadVerdict is the error a run ends with: no request succeeded, a
// threshold failed, or the run was interrupted; nil when it passed.
func loadVerdict(res *load.Result) error {
	var lines []string
	fix := ""
	if s := res.NoSuccess(); s != "" {
		lines = append(lines, s)
		fix = fmt.Sprintf("check that the shop answers at %s (for the lab: lab status), or pass another --target", res.Target)
	}
	var failed []string
	for _, t := range res.Thresholds {
		if !t.Pass {
			failed = append(failed, t.Source)
		}
	}
	if len(failed) > 0 {
		lines = append(lines, fmt.Sprintf("%d threshold(s) failed: %s", len(failed), strings.Join(failed, "; ")))
	}
	if res.StopReason == "cancelled" {
		lines = append(lines, "load run interrupted: the figures above cover only what ran")
	}
	if len(lines) == 0 {
		return nil
	}
	if fix != "" {
		lines = append(lines, "fix: "+fix)
	}
	return errors.New(strings.Join(lines, "\n  "))
}
