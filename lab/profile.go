package lab

import (
	"errors"
	"fmt"
	"time"

	"github.com/jewelry-shop/lab/chaosmesh"
	"github.com/jewelry-shop/lab/lab/judge"
)

// Profile is one way to validate the lab: how much load, for how long, which
// experiments, and the thresholds each requirement is judged by.
type Profile struct {
	// Name is the profile's key in Config.Profiles.
	Name        string `mapstructure:"-" json:"name"`
	Description string `mapstructure:"description" json:"description"`
	// Budget is the stated time the whole validation may take.
	Budget time.Duration `mapstructure:"budget" json:"budget"`
	// Users is the closed-model population, reached at SpawnRate users/s.
	Users     int     `mapstructure:"users" json:"users"`
	SpawnRate float64 `mapstructure:"spawnRate" json:"spawnRate"`
	// Load is how long the load runs; Baseline is the fault-free time at its
	// start, measured as the reference.
	Load     time.Duration `mapstructure:"load" json:"load"`
	Baseline time.Duration `mapstructure:"baseline" json:"baseline"`
	// Experiments are catalogue names, run in this order, Spacing apart, so
	// that the effects of one have settled before the next.
	Experiments []string      `mapstructure:"experiments" json:"experiments"`
	Spacing     time.Duration `mapstructure:"spacing" json:"spacing"`
	// ScaleDownWatch is how long the HPA is watched after the load stops.
	ScaleDownWatch time.Duration `mapstructure:"scaleDownWatch" json:"scaleDownWatch"`
	// RequireHPAMax asks that the HPA reach its maximum under load.
	RequireHPAMax bool       `mapstructure:"requireHPAMax" json:"requireHPAMax"`
	Thresholds    Thresholds `mapstructure:"thresholds" json:"thresholds"`
}

// Criteria are what the profile asks of a run, for its judgement.
func (p Profile) Criteria() judge.Criteria {
	return judge.Criteria{Users: p.Users, RequireHPAMax: p.RequireHPAMax, Thresholds: p.Thresholds}
}

// Thresholds are the limits a profile judges its requirements by.
type Thresholds = judge.Thresholds

// DefaultThresholds are DESIGN.md's requirement numbers.
func DefaultThresholds() Thresholds {
	return Thresholds{
		P95:               2 * time.Second,
		ErrorRateOutside:  0.01,
		ErrorRateInside:   0.25,
		Availability:      0.99,
		Failover:          30 * time.Second,
		PodRecovery:       60 * time.Second,
		NodeRecovery:      90 * time.Second,
		PartitionRecovery: 30 * time.Second,
		ScaleDown:         3 * time.Minute,
	}
}

// BuiltinProfiles returns the profiles lab ships, by name.
func BuiltinProfiles() map[string]Profile {
	return map[string]Profile{
		"quick": {
			Name:           "quick",
			Description:    "100 users for 5 minutes; web pod kill, PostgreSQL primary cut off (a failover after Patroni's ttl) and Redis master down under load",
			Budget:         10 * time.Minute,
			Users:          100,
			SpawnRate:      10,
			Load:           5 * time.Minute,
			Baseline:       30 * time.Second,
			Experiments:    []string{chaosmesh.WebPodKill, chaosmesh.PostgresPrimaryIsolation, chaosmesh.RedisMasterFailure},
			Spacing:        85 * time.Second,
			ScaleDownWatch: 3 * time.Minute,
			Thresholds:     DefaultThresholds(),
		},
		"full": {
			Name:        "full",
			Description: "ramp to 1000 users for 30 minutes; every experiment of the catalogue, spaced apart; the HPA must reach its maximum and return to its minimum",
			Budget:      50 * time.Minute,
			Users:       1000,
			SpawnRate:   10,
			Load:        30 * time.Minute,
			Baseline:    3 * time.Minute,
			Experiments: []string{
				chaosmesh.WebPodKill, chaosmesh.WebPodFailure, chaosmesh.PostgresPrimaryFailure, chaosmesh.PostgresPrimaryIsolation, chaosmesh.RedisMasterFailure,
				chaosmesh.WebPostgresPartition, chaosmesh.WebCPUStress, chaosmesh.WebMemoryStress, chaosmesh.NodeFailure,
			},
			Spacing:        3 * time.Minute,
			ScaleDownWatch: 6 * time.Minute,
			RequireHPAMax:  true,
			Thresholds:     DefaultThresholds(),
		},
	}
}

// Validate reports every problem of the profile at once.
func (p Profile) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("profiles.%s: "+format, append([]any{p.Name}, args...)...))
	}
	if p.Users < 1 || p.Users > 1000 {
		bad("users must be between 1 and 1000, got %d", p.Users)
	}
	if p.SpawnRate <= 0 {
		bad("spawnRate must be positive, got %v", p.SpawnRate)
	}
	if p.Load <= 0 || p.Baseline < 0 || p.Baseline >= p.Load {
		bad("needs 0 <= baseline (%s) < load (%s)", p.Baseline, p.Load)
	}
	if p.Budget <= 0 {
		bad("budget must be positive, got %s", p.Budget)
	}
	if len(p.Experiments) > 1 && p.Spacing <= 0 {
		bad("spacing must be positive with more than one experiment")
	}
	known := map[string]bool{}
	for _, e := range chaosmesh.Catalogue(chaosmesh.Targets{}, chaosmesh.DefaultTiming()) {
		known[e.Name] = true
	}
	seen := map[string]bool{}
	for _, e := range p.Experiments {
		if !known[e] {
			bad("unknown experiment %q", e)
		}
		if seen[e] {
			bad("experiment %q listed twice", e)
		}
		seen[e] = true
	}
	t := p.Thresholds
	if t.P95 <= 0 || t.Failover <= 0 || t.ScaleDown <= 0 || t.PodRecovery <= 0 || t.NodeRecovery <= 0 || t.PartitionRecovery <= 0 {
		bad("every duration threshold must be positive")
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"errorRateOutside", t.ErrorRateOutside}, {"errorRateInside", t.ErrorRateInside}, {"availability", t.Availability}} {
		if f.v < 0 || f.v > 1 {
			bad("thresholds.%s must be a fraction between 0 and 1, got %v", f.name, f.v)
		}
	}
	return errors.Join(errs...)
}
