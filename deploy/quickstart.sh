#!/usr/bin/env bash
# Quickstart: from a fresh clone to a job's live logs on this machine.
#
#   ./deploy/quickstart.sh
#
# Installs what is missing (deploy/install-deps.sh), builds farm-coordinator, farm-agent and
# farmctl into build/bin with Ninja (and ccache), starts a coordinator on a free port and one
# agent, both keeping their state under .quickstart/ (git-ignored), submits
# deploy/examples/hello.yaml and follows its logs live, shows the job, lists its artifacts and
# downloads them (verified) into .quickstart/artifacts/, shows the job list and the agents, then
# stops both processes cleanly (SIGTERM), also when something fails.
# Exits non-zero when the job did not succeed or its artifact could not be fetched. Safe to run
# again: each run starts afresh.
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
mkdir -p "$state_dir/work"

section "Starting the coordinator (data in $state_dir/data, log in $state_dir/coordinator.log)"
"$bin/farm-coordinator" --listen=127.0.0.1:0 --data_dir="$state_dir/data" \
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

section "Starting an agent (workspaces in $state_dir/work, log in $state_dir/agent.log)"
"$bin/farm-agent" --coordinator="$address" --name=quickstart-agent --labels=quickstart=yes \
  --slots=2 --work_dir="$state_dir/work" >"$state_dir/agent.log" 2>&1 &
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

section "Submitting deploy/examples/hello.yaml and following its logs live"
job_rc=0
echo '$ farmctl submit deploy/examples/hello.yaml --follow'
farmctl submit deploy/examples/hello.yaml --follow | tee "$state_dir/submit.out" || job_rc=$?
# In text mode submit prints the job id alone on the first line.
job_id=$(head -n 1 "$state_dir/submit.out" | tr -d '[:space:]')

if [[ -n $job_id ]]; then
  section "The job: farmctl get $job_id"
  show farmctl get "$job_id" || true
fi

if [[ -n $job_id && $job_rc == 0 ]]; then
  # The build step wrote out/result.txt; the agent kept it in the coordinator's CAS.
  section "Its artifacts: farmctl artifacts $job_id"
  show farmctl artifacts "$job_id"

  section "Fetching them (each verified against its SHA-256): farmctl download"
  rm -rf "$state_dir/artifacts"
  show farmctl download "$job_id" -o "$state_dir/artifacts"
  show cat "$state_dir/artifacts/out/result.txt"
  if [[ $(cat "$state_dir/artifacts/out/result.txt") != data ]]; then
    echo "the downloaded out/result.txt does not hold what the job wrote" >&2
    exit 1
  fi
fi

section "All jobs: farmctl list"
show farmctl list || true

section "Agents: farmctl agents"
show farmctl agents || true

if ((job_rc != 0)); then
  section "The job did not succeed (farmctl exit code $job_rc)"
  exit "$job_rc"
fi
section "Done: the job succeeded"
echo "The coordinator's and the agent's logs are in $state_dir/."
echo "README.md shows how to run a coordinator and agents yourself, and every farmctl command."
