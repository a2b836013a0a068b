#!/usr/bin/env bash
# The container images' test (CTest deploy_images, label "deploy"): builds both images of
# deploy/docker/Dockerfile with podman on a Debian 12 base image, then runs them as a user would,
# on loopback only (the containers share one network namespace of their own, --network=none):
#   - the coordinator, TLS on, as uid 10001 with a read-only root and no capability, its store on
#     a volume: its HEALTHCHECK (farm-health-probe) must report it healthy;
#   - an agent enrolled with a single-use enrollment token, with only the capabilities the
#     Kubernetes manifest gives it: a job's steps must run as farm-build inside the agent's
#     container and must not read the agent's credential;
#   - `podman stop` drains the agent and stops the coordinator: both exit 0.
#
# Usage: test_images.sh STATE_DIR   (podman's storage and the base image live there, so that a
# second run reuses the image layers and the compiler cache)
#
# It runs only with FARM_IMAGE_TEST=1: a first build compiles the farm inside the image (more
# than CI's time budget allows; see README, "Containers", for the measured time). Skipped, with
# the reason, without podman, without a runtime that works on this machine's cgroups, or
# without a base image: $FARM_BASE_IMAGE (an image podman has), else one made here with
# mmdebstrap from this machine's Debian sources (needs root; no image registry is needed).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
state=${1:?usage: test_images.sh STATE_DIR}

skip() {
  echo "SKIPPED: $*"
  exit 77
}
if [[ ${FARM_IMAGE_TEST:-} != 1 ]]; then
  skip "set FARM_IMAGE_TEST=1 to build and run the container images (podman; the first build" \
    "compiles the farm inside the image, longer than CI's budget)"
fi
command -v podman >/dev/null || skip "podman is not installed (apt-get install podman)"

mkdir -p "$state"
state=$(cd "$state" && pwd)
# Its own storage, and limits this machine allows: podman's default rlimits for root exceed
# what a process without CAP_SYS_RESOURCE may set, which fails every container start.
conf=$state/containers.conf
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[[ $nofile == unlimited ]] && nofile=1048576
[[ $nproc == unlimited ]] && nproc=65536
((nproc > 4096)) && nproc=4096
{
  echo "[containers]"
  echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
} >"$conf"
# crun refuses hosts whose cgroups are a v1/v2 hybrid; runc runs there.
if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
  command -v runc >/dev/null ||
    skip "this machine's cgroups are v1 or hybrid, which crun refuses: install runc"
  printf '[engine]\nruntime = "runc"\n' >>"$conf"
fi
export CONTAINERS_CONF=$conf
podman=(podman --root="$state/storage" --runroot="$state/run")

elapsed() { echo "$(($(date +%s) - $1)) s"; }
start_all=$(date +%s)

# The base image.
base=${FARM_BASE_IMAGE:-localhost/farm-debian:12}
if ! "${podman[@]}" image exists "$base"; then
  [[ -n ${FARM_BASE_IMAGE:-} ]] && skip "FARM_BASE_IMAGE=$base is not an image podman has"
  command -v mmdebstrap >/dev/null ||
    skip "no Debian 12 base image: set FARM_BASE_IMAGE, or install mmdebstrap to make one"
  [[ $(id -u) -eq 0 ]] || skip "making the base image with mmdebstrap needs root"
  sources=/etc/apt/sources.list.d/debian.sources
  [[ -f $sources ]] || sources=/etc/apt/sources.list
  t=$(date +%s)
  mmdebstrap --variant=minbase --format=tar --quiet bookworm "$state/base.tar" - <"$sources"
  "${podman[@]}" import --quiet --change 'CMD ["/bin/bash"]' "$state/base.tar" "$base" >/dev/null
  rm -f "$state/base.tar"
  echo "base image $base made with mmdebstrap: $(elapsed "$t")"
fi

# The images.
for target in coordinator agent; do
  t=$(date +%s)
  "${podman[@]}" build --quiet --format=docker --network=host --build-arg="BASE=$base" \
    -f "$src/deploy/docker/Dockerfile" --target="$target" -t "localhost/farm-$target:test" \
    "$src" >"$state/build-$target.log" 2>&1 || {
    tail -40 "$state/build-$target.log"
    echo "FAILED: podman build --target=$target (log: $state/build-$target.log)"
    exit 1
  }
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "localhost/farm-$target:test")
  echo "image farm-$target: built in $(elapsed "$t"), $((size / 1048576)) MiB"
done

# Running them.
work=$(mktemp -d)
name=farm-test-$$
cleanup() {
  "${podman[@]}" rm -f -v -t 0 "$name-agent" "$name-coordinator" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAILED: $*"
  for c in coordinator agent; do
    echo "--- $c's log:"
    "${podman[@]}" logs "$name-$c" 2>&1 | tail -20 || true
  done
  exit 1
}
# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.5
  done
}

mkdir -p "$work/tls" "$work/data" "$work/enroll"
"${podman[@]}" run --rm --network=none --user=0 --entrypoint=/usr/bin/farmctl \
  -v "$work/tls:/tls" localhost/farm-coordinator:test certs init --dir=/tls >/dev/null
chown -R 10001:10001 "$work/tls" "$work/data"

t=$(date +%s)
"${podman[@]}" run -d --name="$name-coordinator" --network=none --read-only --cap-drop=all \
  -v "$work/data:/var/lib/farm" -v "$work/tls:/etc/farm/tls:ro" \
  localhost/farm-coordinator:test >/dev/null
wait_for 60 "${podman[@]}" healthcheck run "$name-coordinator" ||
  fail "the coordinator's HEALTHCHECK never reported it healthy"
echo "coordinator healthy (HEALTHCHECK: farm-health-probe over TLS) after $(elapsed "$t")"
uid=$("${podman[@]}" exec "$name-coordinator" id -u)
[[ $uid == 10001 ]] || fail "the coordinator runs as uid $uid, not 10001"

admin=(--tls_cert=/etc/farm/tls/admin.crt --tls_key=/etc/farm/tls/admin.key)
farmctl() { "${podman[@]}" exec -i "$name-coordinator" farmctl "${admin[@]}" "$@"; }
farmctl agent enroll-token --ttl=10m >"$work/enroll/token" 2>/dev/null ||
  fail "farmctl agent enroll-token"

t=$(date +%s)
"${podman[@]}" run -d --name="$name-agent" --network="container:$name-coordinator" \
  --cap-drop=all --cap-add=CHOWN,DAC_OVERRIDE,FOWNER,KILL,SETGID,SETUID \
  -v "$work/enroll:/enroll:ro" -v "$work/tls/ca.crt:/etc/farm/ca/ca.crt:ro" \
  localhost/farm-agent:test --coordinator=127.0.0.1:7070 --tls_ca=/etc/farm/ca/ca.crt \
  --name=agent-1 --enroll_token_file=/enroll/token --work_dir=/var/lib/farm-agent --slots=1 \
  >/dev/null
agent_listed() { farmctl agents | grep -q agent-1; }
wait_for 60 agent_listed || fail "the agent never registered"
echo "agent registered after $(elapsed "$t"): $(farmctl agents | grep agent-1)"

job='steps:
  - run: echo "step-user=$(id -un)"
  - run: if cat /var/lib/farm-agent/credential; then echo "credential readable"; exit 1; fi'
id=$(farmctl submit - <<<"$job")
farmctl wait "$id" --timeout=120s >/dev/null || fail "job $id did not succeed: $(farmctl get "$id")"
logs=$(farmctl logs "$id" 2>/dev/null)
grep -q "step-user=farm-build" <<<"$logs" || fail "the step did not run as farm-build: $logs"
echo "job $id ran inside the agent's container as farm-build, the credential out of its reach"

"${podman[@]}" stop -t 60 "$name-agent" >/dev/null
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name-agent")
[[ $code == 0 ]] || fail "the agent exited $code on SIGTERM, not 0 (drained)"
"${podman[@]}" stop -t 30 "$name-coordinator" >/dev/null
code=$("${podman[@]}" inspect --format '{{.State.ExitCode}}' "$name-coordinator")
[[ $code == 0 ]] || fail "the coordinator exited $code on SIGTERM, not 0"
echo "agent drained and coordinator stopped, both exit 0; whole test $(elapsed "$start_all")"
echo "PASSED"
