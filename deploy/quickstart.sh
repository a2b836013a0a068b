#!/usr/bin/env bash
# Quickstart: from a fresh clone to a pipeline's live progress, logs and artifacts on this
# machine.
#
#   ./deploy/quickstart.sh
#
# Installs what is missing (deploy/install-deps.sh), builds farm-coordinator, farm-agent and
# farmctl into build/bin with Ninja (and ccache), makes a CA and certificates, starts a
# coordinator with TLS on a free port, makes an agent token and a submitter token with the
# admin certificate, starts one agent with its token, all state under .quickstart/
# (git-ignored), submits (as the submitter) the pipeline
# deploy/examples/release.yaml (a matrix build, a test that gets the builds' artifacts, a
# package job in a concurrency group) and follows its progress live, shows the pipeline, the
# test job's logs, lists the package's artifacts and downloads them (verified) into
# .quickstart/artifacts/, shows the job list and the agents, then stops both processes cleanly
# (SIGTERM), also when something fails.
# Exits non-zero when the pipeline did not succeed or its artifact could not be fetched. Safe
# to run again: each run starts afresh.
set -euo pipefail
cd "$(dirname "$0")/.."

state_dir=.quickstart
bin=build/bin

if [[ -t 1 ]]; then
  bold=$'\033[1m' reset=$'\033[0m'
else
  bold='' reset=''
fi
section() { printf '\n%s### %s%s\n' "$bold" "$*" "$reset"; }
# Shows a command the way a user would type it, then runs it.
show() {
  printf '$ %s\n' "$*"
  "$@"
}
farmctl() { "$bin/farmctl" "$@"; }

coordinator_pid=
agent_pid=
work_dir=

# SIGTERM, then wait up to 20 s for a clean exit (the agent drains), then SIGKILL.
stop() {
  local name=$1 pid=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  echo "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$name did not stop in 20s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $agent_pid || -n $coordinator_pid ]]; then
    section "Stopping the agent and the coordinator"
    stop farm-agent "$agent_pid"
    stop farm-coordinator "$coordinator_pid"
  fi
  if ((rc != 0)); then
    echo "quickstart failed (exit $rc); logs are in $state_dir/" >&2
  fi
  [[ -n $work_dir ]] && rm -rf "$work_dir"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A previous run that was killed outright may have left its processes behind; they are ours
# (their pids were recorded), so stop them before the state they use is removed.
for pid_file in "$state_dir"/agent.pid "$state_dir"/coordinator.pid; do
  [[ -f $pid_file ]] || continue
  old_pid=$(cat "$pid_file")
  if [[ $old_pid =~ ^[0-9]+$ ]] && grep -qs farm- "/proc/$old_pid/cmdline"; then
    echo "stopping a leftover process from an earlier run (pid $old_pid)"
    kill -TERM "$old_pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$old_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$old_pid" 2>/dev/null || true
  fi
done

section "Installing dependencies (deploy/install-deps.sh)"
./deploy/install-deps.sh
echo "all dependencies present"

section "Building farm-coordinator, farm-agent and farmctl into $bin/"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/farm-ccache}
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${FARM_BUILD_TYPE:-RelWithDebInfo}"
cmake --build build -j "$(nproc)" --target farm-coordinator farm-agent farmctl

rm -rf "$state_dir"
mkdir -p "$state_dir"
# The agent's work dir: run as root, the agent runs steps as an unprivileged user (see
# "Step isolation" in the README), who must be able to reach the workspaces; a checkout under a
# private home directory (/root is 0700) would not do, so the workspaces go under /tmp.
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/farm-quickstart-work.XXXXXX")
chmod 0711 "$work_dir"  # searchable, not listable, by the step user

section "Making a CA and certificates: farmctl certs init --dir $state_dir/certs"
show farmctl certs init --dir="$state_dir/certs"
certs=$state_dir/certs
# Every farmctl below verifies the coordinator with this CA.
export FARM_TLS_CA=$certs/ca.crt

section "Starting the coordinator with TLS (data in $state_dir/data, log in $state_dir/coordinator.log)"
"$bin/farm-coordinator" --listen=127.0.0.1:0 --data_dir="$state_dir/data" \
  --tls_cert="$certs/coordinator.crt" --tls_key="$certs/coordinator.key" \
  --tls_client_ca="$certs/ca.crt" \
  --port_file="$state_dir/coordinator.port" >"$state_dir/coordinator.log" 2>&1 &
coordinator_pid=$!
echo "$coordinator_pid" >"$state_dir/coordinator.pid"
# The coordinator writes its address to the port file (atomically) once it serves.
for _ in $(seq 300); do
  [[ -s $state_dir/coordinator.port ]] && break
  if ! kill -0 "$coordinator_pid" 2>/dev/null; then
    cat "$state_dir/coordinator.log" >&2
    echo "the coordinator exited during start-up" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ ! -s $state_dir/coordinator.port ]]; then
  echo "the coordinator did not start serving within 30s; see $state_dir/coordinator.log" >&2
  exit 1
fi
address=$(cat "$state_dir/coordinator.port")
# farmctl reads the coordinator's address from here when --coordinator is not given.
export FARM_COORDINATOR=$address
echo "coordinator serving on $address (pid $coordinator_pid)"

section "Tokens, made by the admin (its certificate): one for the agent, one for you"
admin() { farmctl --tls_cert="$certs/admin.crt" --tls_key="$certs/admin.key" "$@"; }
echo '$ farmctl token create --role=agent --name=quickstart-agent >agent.token'
admin token create --role=agent --name=quickstart-agent >"$state_dir/agent.token"
echo '$ farmctl token create --role=submitter --name=quickstart-user --ttl=1d >user.token'
admin token create --role=submitter --name=quickstart-user --ttl=1d >"$state_dir/user.token"
chmod 600 "$state_dir/agent.token" "$state_dir/user.token"
echo '$ farmctl token list'
admin token list
# From here on farmctl is the user, with the submitter token.
FARM_TOKEN=$(cat "$state_dir/user.token")
export FARM_TOKEN

section "Starting an agent (workspaces in $work_dir, log in $state_dir/agent.log)"
"$bin/farm-agent" --coordinator="$address" --name=quickstart-agent \
  --tls_ca="$certs/ca.crt" --token_file="$state_dir/agent.token" --labels=quickstart=yes \
  --slots=2 --work_dir="$work_dir" >"$state_dir/agent.log" 2>&1 &
agent_pid=$!
echo "$agent_pid" >"$state_dir/agent.pid"
# Until the coordinator lists it: a job submitted to a farm without agents would wait forever.
for _ in $(seq 300); do
  farmctl agents --output=json 2>/dev/null | grep -q '"quickstart-agent"' && break
  if ! kill -0 "$agent_pid" 2>/dev/null; then
    cat "$state_dir/agent.log" >&2
    echo "the agent exited during start-up" >&2
    exit 1
  fi
  sleep 0.1
done
if ! farmctl agents --output=json 2>/dev/null | grep -q '"quickstart-agent"'; then
  echo "the agent did not register within 30s; see $state_dir/agent.log" >&2
  exit 1
fi
echo "agent quickstart-agent registered (pid $agent_pid)"

section "Submitting the pipeline deploy/examples/release.yaml and following its progress"
job_rc=0
echo '$ farmctl submit deploy/examples/release.yaml --follow'
farmctl submit deploy/examples/release.yaml --follow | tee "$state_dir/submit.out" || job_rc=$?
# submit prints the pipeline id alone on the first line, then the jobs' progress.
pipeline_id=$(head -n 1 "$state_dir/submit.out" | tr -d '[:space:]')

job_of() {  # the id of a job of the pipeline, by name, from `farmctl get PIPELINE`
  farmctl get "$pipeline_id" | awk -v name="$1" '$1 == name { print $2 }'
}
if [[ $pipeline_id == p* ]]; then
  section "The pipeline: farmctl get $pipeline_id"
  show farmctl get "$pipeline_id" || true
fi

if [[ $pipeline_id == p* && $job_rc == 0 ]]; then
  # test received both builds' artifacts under inputs/, and its cleanup step ran.
  test_id=$(job_of test)
  section "The test job's logs: farmctl logs $test_id"
  show farmctl logs "$test_id"

  # package put both binaries in a tarball, kept in the coordinator's CAS.
  package_id=$(job_of package)
  section "The package job's artifacts: farmctl artifacts $package_id"
  show farmctl artifacts "$package_id"

  section "Fetching them (each verified against its SHA-256): farmctl download"
  rm -rf "$state_dir/artifacts"
  show farmctl download "$package_id" -o "$state_dir/artifacts"
  show tar tzf "$state_dir/artifacts/dist/release-1.2.tar.gz"
  if [[ $(tar xzf "$state_dir/artifacts/dist/release-1.2.tar.gz" -O ./app-arm64) != "app 1.2 for arm64" ]]; then
    echo "the downloaded release tarball does not hold what the build jobs wrote" >&2
    exit 1
  fi
fi

section "All jobs: farmctl list"
show farmctl list || true

section "Agents: farmctl agents"
show farmctl agents || true

if ((job_rc != 0)); then
  section "The pipeline did not succeed (farmctl exit code $job_rc)"
  exit "$job_rc"
fi
section "Done: the pipeline succeeded"
echo "The coordinator's and the agent's logs are in $state_dir/."
echo "README.md shows how to run a coordinator and agents yourself, and every farmctl command."
