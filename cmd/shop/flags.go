package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// envFlags registers flags whose defaults come from environment variables,
// so that every setting is a flag on the command line and an env var in a
// Pod spec. Env values that do not parse are collected in errs.
type envFlags struct {
	fs   *flag.FlagSet
	errs []error
}

func (e *envFlags) usage(env, usage string) string { return usage + " (env " + env + ")" }

func (e *envFlags) lookup(env string) (string, bool) {
	v, ok := os.LookupEnv(env)
	return v, ok && v != ""
}

func (e *envFlags) string(p *string, name, env, usage string) {
	if v, ok := e.lookup(env); ok {
		*p = v
	}
	e.fs.StringVar(p, name, *p, e.usage(env, usage))
}

func (e *envFlags) duration(p *time.Duration, name, env, usage string) {
	if v, ok := e.lookup(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("env %s=%q: %w", env, v, err))
		} else {
			*p = d
		}
	}
	e.fs.DurationVar(p, name, *p, e.usage(env, usage))
}

func (e *envFlags) int64(p *int64, name, env, usage string) {
	if v, ok := e.lookup(env); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("env %s=%q: %w", env, v, err))
		} else {
			*p = n
		}
	}
	e.fs.Int64Var(p, name, *p, e.usage(env, usage))
}

// list is a comma-separated list flag.
type list struct{ p *[]string }

func (l list) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l list) Set(s string) error {
	*l.p = nil
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.p = append(*l.p, v)
		}
	}
	return nil
}

func (e *envFlags) list(p *[]string, name, env, usage string) {
	if v, ok := e.lookup(env); ok {
		_ = list{p}.Set(v)
	}
	e.fs.Var(list{p}, name, e.usage(env, usage))
}
