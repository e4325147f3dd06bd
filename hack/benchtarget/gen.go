package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/jewelry-shop/lab/load"
)

// bareGenerator runs the lab's load generator (package load) in this small
// program, the way the benchmark's anchor measured a bare Go program: a
// closed-model population of users against url, with think time between
// minThink and maxThink. It writes the run's result as JSON to stdout.
//
// `lab load` runs the same code; its resident memory also holds the pages of
// the lab executable that its Kubernetes, Helm and Docker libraries touch at
// start, which do not grow with the population.
func bareGenerator(ctx context.Context, url string, users int, minThink, maxThink, d time.Duration) error {
	sc, err := load.ParseScenario([]byte("behaviours: [{name: get, steps: [{name: get, path: /}]}]"))
	if err != nil {
		return fmt.Errorf("parse scenario: %w", err)
	}
	res, err := load.Run(ctx, load.Options{
		Target: url, Scenario: sc, Model: load.Closed, Users: users, SpawnRate: 500,
		Think:    &load.ThinkTime{Min: minThink, Max: maxThink},
		Duration: d, MaxRequests: 100_000_000,
	})
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
