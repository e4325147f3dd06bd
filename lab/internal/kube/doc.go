// Package kube holds what a validation observes and does through the
// Kubernetes API: the web workload's replicas and its autoscaler, the pods'
// usage from the metrics API, the live workloads' probes, the PostgreSQL
// primary and the Redis master, node failure with the pods it moves, the
// stack's readiness and Chaos Mesh's. Each type implements one of the small
// interfaces the lab's runner declares; none judges what it saw.
package kube
