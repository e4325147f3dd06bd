#!/usr/bin/env bash
# Builds the test control plane and the parts of a real node (verification
# tiers 3 and 3b in DESIGN.md) from the Go modules pinned in hack/tools:
# kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok,
# controller-gen, kubelet, kube-proxy and kubectl; and from their own small
# modules, whose Kubernetes libraries differ from k8s.io/kubernetes', CoreDNS
# (hack/coredns: only the plugins the tiers use), metrics-server
# (hack/metrics-server) and local-path-provisioner
# (hack/local-path-provisioner: the add-ons of the k3d node image).
#
# The binaries go to one cache directory keyed by every pinned version:
#   ${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}/test-assets/<key>/
# When all of them are already there the script builds nothing. Its last line
# of output is always that directory (tests find it the same way, see
# internal/controlplane/assets.go).
#
# The binaries of each module are built by one `go build` with the same flags
# (-trimpath, CGO_ENABLED=0 and the version ldflags below), so the Go build cache is shared
# between runs: a cold build takes minutes and ~3 GB of RAM, a warm one
# seconds. Do not build these packages elsewhere with other flags: the Makefile
# and the tests build the main module's programs with these flags too, and
# hack/tools requires the main module's versions of the modules they share, so
# those packages compile once. Without cgo
# the binaries are static: the same files run on the host and inside the
# test-only node images, which have no C library.
set -euo pipefail

# The pinned versions. They must match hack/tools/go.mod, hack/coredns/go.mod,
# hack/metrics-server/go.mod, hack/local-path-provisioner/go.mod and the
# constants in
# internal/controlplane/assets.go (TestAssetsScriptAgrees checks the latter).
KUBERNETES_VERSION=v1.37.2
ETCD_VERSION=v3.7.0
KWOK_VERSION=v0.8.0
CONTROLLER_TOOLS_VERSION=v0.23.0
COREDNS_VERSION=v1.15.0
METRICS_SERVER_VERSION=v0.8.0
LOCAL_PATH_PROVISIONER_VERSION=v0.0.30

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}"
key="k8s-${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}-cg-${CONTROLLER_TOOLS_VERSION}-coredns-${COREDNS_VERSION}-ms-${METRICS_SERVER_VERSION}-lpp-${LOCAL_PATH_PROVISIONER_VERSION}"
dir="${cache}/test-assets/${key}"
binaries=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok controller-gen kubelet kube-proxy kubectl coredns metrics-server local-path-provisioner)

complete() {
  local b
  for b in "${binaries[@]}"; do
    [[ -x "${dir}/${b}" ]] || return 1
  done
}

if ! complete; then
  major_minor="${KUBERNETES_VERSION#v}"
  major="${major_minor%%.*}"
  minor="${major_minor#*.}"
  minor="${minor%%.*}"
  # Without the component-base version the apiserver reports v0.0.0 and Helm
  # rejects charts that carry a kubeVersion constraint. etcd and
  # controller-gen take their versions from their module; kwok's is set to
  # the same value its release build sets.
  # -s -w: no symbol table and no DWARF (tracebacks keep their function
  # names); it is what a release build does, links faster and makes the node
  # image, which carries seven of these binaries, 30 % smaller (808 → 564 MB).
  ldflags=(
    "-s" "-w"
    "-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}"
    "-X k8s.io/component-base/version.gitMajor=${major}"
    "-X k8s.io/component-base/version.gitMinor=${minor}"
    "-X k8s.io/component-base/version.gitTreeState=clean"
    "-X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION}"
    "-X k8s.io/client-go/pkg/version.gitMajor=${major}"
    "-X k8s.io/client-go/pkg/version.gitMinor=${minor}"
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
  )
  mkdir -p "${cache}/test-assets"
  tmp="$(mktemp -d "${cache}/test-assets/.build-XXXXXX")"
  trap 'rm -rf "${tmp}"' EXIT
  echo "building test assets into ${dir} (cold: several minutes, ~3 GB of RAM)" >&2
  start=$(date +%s)
  # The tools module is built on its own, whatever go.work may say.
  GOWORK=off CGO_ENABLED=0 go -C "${root}/hack/tools" build \
    -mod=readonly -trimpath -ldflags "${ldflags[*]}" -o "${tmp}/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy \
    k8s.io/kubernetes/cmd/kubectl \
    go.etcd.io/etcd/server/v3 \
    sigs.k8s.io/kwok/cmd/kwok \
    sigs.k8s.io/controller-tools/cmd/controller-gen
  # The etcd main package is the root of go.etcd.io/etcd/server/v3, so go
  # build names its binary after "server".
  mv "${tmp}/server" "${tmp}/etcd"
  # CoreDNS takes its version from its module; metrics-server, like its own
  # release build, from client-go's version variable.
  GOWORK=off CGO_ENABLED=0 go -C "${root}/hack/coredns" build \
    -mod=readonly -trimpath -ldflags "-s -w" -o "${tmp}/coredns" .
  GOWORK=off CGO_ENABLED=0 go -C "${root}/hack/metrics-server" build \
    -mod=readonly -trimpath -ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=${METRICS_SERVER_VERSION}" \
    -o "${tmp}/metrics-server" sigs.k8s.io/metrics-server/cmd/metrics-server
  # local-path-provisioner's release build (its scripts/build) sets
  # main.VERSION, without the leading v.
  GOWORK=off CGO_ENABLED=0 go -C "${root}/hack/local-path-provisioner" build \
    -mod=readonly -trimpath -ldflags "-s -w -X main.VERSION=${LOCAL_PATH_PROVISIONER_VERSION#v}" \
    -o "${tmp}/local-path-provisioner" github.com/rancher/local-path-provisioner
  chmod 755 "${tmp}"
  rm -rf "${dir}"
  mv "${tmp}" "${dir}"
  trap - EXIT
  echo "built test assets in $(($(date +%s) - start)) s" >&2
fi

echo "${dir}"
