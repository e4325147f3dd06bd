#!/usr/bin/env bash
# Builds a Debian root filesystem for lab's test-only images
# (internal/testnode): a debootstrap minbase of Debian bookworm with one of
# three package sets.
#
#   node       what a k3s node needs around its own binary, for the k3d node
#              image: containerd, runc and the CNI plugins for its kubelet,
#              iptables (kube-proxy, the CNI bridge, k3d's DNS fix), iproute2
#              (routes between the nodes' pod ranges), /bin/sh, coreutils and
#              mount (k3d's entrypoint and its mounts fix); busybox-static,
#              whose one static binary is the image of local-path's helper
#              pods (sh, mkdir, rm, chmod), which the node image carries.
#   workloads  Redis, Sentinel and nginx from Debian's packages, the base of
#              the images that stand in for the official redis and nginx
#              images on the real nodes of internal/realnode.
#   postgres   Debian's postgresql-15 (server, psql, pg_isready), the base of
#              the image that stands in for the official postgres image. A set
#              of its own, not part of workloads: PostgreSQL and what it pulls
#              in (ICU, Perl, locales) would take the Redis and nginx images,
#              which every real node imports, from ~95 MB to ~215 MB each.
#
#   hack/node-rootfs.sh [node|workloads|postgres]
#                                          build unless cached (default: node);
#                                          the last line of output is the
#                                          tarball's path
#
# The tarball is cached in
#   ${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}/node-rootfs/<key>.tar
# with its SHA-256 in <key>.tar.sha256, where <key> hashes the suite, the
# variant, the package list and the trimming below: change any of them and a
# new tarball is built. Nothing is built when the tarball exists. A cold build
# downloads ~70 MB from the Debian mirror (DEBIAN_MIRROR, default
# deb.debian.org) and takes minutes; it needs root and debootstrap, and exits
# 3 when either is missing.
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
SET_TRIM=""
case "${1:-node}" in
  node) PACKAGES=(busybox-static ca-certificates containerd containernetworking-plugins iproute2 iptables procps runc) ;;
  workloads) PACKAGES=(nginx-light redis-sentinel redis-server redis-tools) ;;
  postgres)
    PACKAGES=(postgresql-15)
    # postgresql-common's postinst creates a cluster (15/main) that the image
    # never uses: its entrypoint runs initdb in PGDATA. The JIT provider is
    # removed with the LLVM library it loads and Z3, which only LLVM uses
    # (~130 MB): without llvmjit.so, PostgreSQL runs with JIT unavailable,
    # as with jit=off.
    SET_TRIM="v1: the main cluster and its configuration, the LLVM JIT provider, libLLVM and libz3"
    ;;
  *)
    echo "node-rootfs: unknown package set ${1}; want node, workloads or postgres" >&2
    exit 2
    ;;
esac
# TRIM names what is removed after debootstrap, SET_TRIM what is removed
# besides for one set; both are part of the key (an empty SET_TRIM is left out
# of it, so that the sets without one keep their keys).
TRIM="v1: apt archives and lists, docs, man and info pages, locales, logs"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

cache="${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}"
dir="${cache}/node-rootfs"
key="$(printf '%s\n' "${SUITE}" "${VARIANT}" "${PACKAGES[@]}" "${TRIM}" ${SET_TRIM:+"${SET_TRIM}"} | sha256sum | cut -c1-16)"
out="${dir}/${key}.tar"

if [[ -f "${out}" && -f "${out}.sha256" ]]; then
  echo "${out}"
  exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "node-rootfs: debootstrap needs root; run as root (CI does)" >&2
  exit 3
fi
if ! command -v debootstrap >/dev/null; then
  echo "node-rootfs: debootstrap not found; install it (apt-get install debootstrap)" >&2
  exit 3
fi

mkdir -p "${dir}"
# One build at a time: a second caller waits and then finds the tarball.
exec 9>"${dir}/.lock"
flock 9
if [[ -f "${out}" && -f "${out}.sha256" ]]; then
  echo "${out}"
  exit 0
fi

tmp="$(mktemp -d "${dir}/.build-XXXXXX")"
trap 'rm -rf "${tmp}"' EXIT
start=$(date +%s)
echo "node-rootfs: debootstrap ${VARIANT} ${SUITE} with ${PACKAGES[*]} (minutes)" >&2
includes="$(IFS=,; echo "${PACKAGES[*]}")"
if ! debootstrap --variant="${VARIANT}" --include="${includes}" "${SUITE}" "${tmp}/rootfs" "${MIRROR}" >"${tmp}/debootstrap.log" 2>&1; then
  echo "node-rootfs: debootstrap failed; the end of its log:" >&2
  tail -n 30 "${tmp}/debootstrap.log" >&2
  exit 1
fi

r="${tmp}/rootfs"
rm -rf "${r}"/var/cache/apt/archives/*.deb "${r}"/var/cache/apt/*.bin "${r}"/var/lib/apt/lists/* \
  "${r}"/usr/share/doc/* "${r}"/usr/share/man/* "${r}"/usr/share/info/* "${r}"/usr/share/locale/* \
  "${r}"/var/log/* "${r}"/var/cache/debconf/*-old "${r}"/tmp/* "${r}"/root/.bash_history
# debootstrap leaves the build host's resolver and host name behind; Docker
# provides both at run time.
rm -f "${r}"/etc/resolv.conf "${r}"/etc/hostname
if [[ "${1:-node}" == postgres ]]; then
  rm -rf "${r}"/var/lib/postgresql/15 "${r}"/etc/postgresql/15 \
    "${r}"/usr/lib/postgresql/15/lib/llvmjit.so "${r}"/usr/lib/postgresql/15/lib/llvmjit_types.bc \
    "${r}"/usr/lib/postgresql/15/lib/bitcode "${r}"/usr/lib/llvm-14 "${r}"/usr/lib/*/libLLVM-14.so* "${r}"/usr/lib/*/libz3.so*
fi

# Device nodes and the mount points' contents come from the container
# runtime, not from the image.
tar --numeric-owner --sort=name -C "${r}" -cf "${tmp}/rootfs.tar" \
  --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./run/*' .
(cd "${tmp}" && sha256sum rootfs.tar | cut -d' ' -f1 >rootfs.tar.sha256)
mv "${tmp}/rootfs.tar.sha256" "${out}.sha256.tmp"
mv "${tmp}/rootfs.tar" "${out}"
mv "${out}.sha256.tmp" "${out}.sha256"
echo "node-rootfs: built $(du -h "${out}" | cut -f1) in $(($(date +%s) - start)) s" >&2
echo "${out}"
