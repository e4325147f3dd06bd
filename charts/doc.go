// Package charts installs the lab's Helm releases: the jewelry-shop chart,
// embedded in the binary, and the pinned upstream charts (Chaos Mesh and the
// Zalando postgres-operator) fetched from their chart repositories.
//
// The pinned references live in pinned.go. An Installer upgrades or installs
// a Release through the Helm SDK, so running it twice converges, waits for
// the release's workloads with a progress line, and on timeout explains which
// pods are not ready and why. Images lists every image the rendered charts
// reference, for importing them into the cluster ahead of time.
package charts
