#!/usr/bin/env bash
# Builds a Debian root filesystem for lab's test-only images
# (internal/testnode): a debootstrap minbase of Debian bookworm with one of
# two package sets.
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
#
#   hack/node-rootfs.sh [node|workloads]   build unless cached (default: node);
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
case "${1:-node}" in
  node) PACKAGES=(busybox-static ca-certificates containerd containernetworking-plugins iproute2 iptables procps runc) ;;
  workloads) PACKAGES=(nginx-light redis-sentinel redis-server redis-tools) ;;
  *)
    echo "node-rootfs: unknown package set ${1}; want node or workloads" >&2
    exit 2
    ;;
esac
# TRIM names what is removed after debootstrap; it is part of the key.
TRIM="v1: apt archives and lists, docs, man and info pages, locales, logs"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

cache="${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}"
dir="${cache}/node-rootfs"
key="$(printf '%s\n' "${SUITE}" "${VARIANT}" "${PACKAGES[@]}" "${TRIM}" | sha256sum | cut -c1-16)"
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
