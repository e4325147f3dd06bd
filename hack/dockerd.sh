#!/usr/bin/env bash
# Starts a Docker daemon for the tests (verification tier 4 in DESIGN.md),
# with hack/runc-capdrop as its default OCI runtime: this sandbox lacks
# CAP_SYS_RESOURCE, so runc cannot start the privileged containers k3d makes
# for every node unless that one capability is dropped from their spec.
#
#   hack/dockerd.sh            start dockerd in the background unless one
#                              answers; print its PID (nothing if it was
#                              already running)
#
# The daemon logs to ${DOCKERD_LOG:-/tmp/lab-dockerd.log}. Stop it by its
# PID. A daemon that already runs is left as it is: the lifecycle tests say
# how to restart it when it cannot start privileged containers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${LAB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lab}"
log="${DOCKERD_LOG:-/tmp/lab-dockerd.log}"

if docker info >/dev/null 2>&1; then
  exit 0
fi

wrapper="${cache}/bin/runc-capdrop"
mkdir -p "${cache}/bin"
CGO_ENABLED=0 go -C "${root}" build -trimpath -o "${wrapper}" ./hack/runc-capdrop

dockerd --add-runtime "lab-capdrop=${wrapper}" --default-runtime lab-capdrop >"${log}" 2>&1 &
pid=$!
for _ in $(seq 60); do
  if docker info >/dev/null 2>&1; then
    echo "${pid}"
    exit 0
  fi
  if ! kill -0 "${pid}" 2>/dev/null; then
    break
  fi
  sleep 1
done
echo "dockerd did not come up; the end of ${log}:" >&2
tail -n 30 "${log}" >&2
kill "${pid}" 2>/dev/null || true
exit 1
