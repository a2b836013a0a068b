#!/usr/bin/env bash
# The Kubernetes manifests' tests (CTest label "deploy"), offline, without a cluster:
#   test_manifests.sh check     check_manifests.py on the kustomization as written, and its
#                               self-test (each invariant broken on purpose must be reported)
#   test_manifests.sh kubectl   `kubectl kustomize` with Debian 12's kubectl (kubernetes-client,
#                               1.20) builds the manifests (generators, names, namespace), and
#                               the checker checks its output; skipped (exit 77) without it
# Debian's kubectl is /usr/bin/kubectl when package kubernetes-client owns it, else the copy
# deploy/install-deps.sh unpacks under /opt/farm/kubernetes-client (where another kubectl owns
# /usr/bin/kubectl); $FARM_KUBECTL names another. Offline, kubectl can build but not validate
# against a server's schema: `apply --dry-run=client` and `create --dry-run=client` both need
# the API server's discovery.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
mode=${1:-check}

if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "FAILED: python3 with PyYAML is needed (deploy/install-deps.sh installs python3-yaml)"
  exit 1
fi
checker=(python3 "$here/check_manifests.py" --kustomization="$here" --source="$source_dir")

case $mode in
  check)
    exec "${checker[@]}" --self-test
    ;;
  kubectl)
    kubectl=${FARM_KUBECTL:-}
    if [[ -z $kubectl ]]; then
      owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
      if [[ $owner == kubernetes-client ]]; then
        kubectl=/usr/bin/kubectl
      elif [[ -x /opt/farm/kubernetes-client/usr/bin/kubectl ]]; then
        kubectl=/opt/farm/kubernetes-client/usr/bin/kubectl
      else
        echo "SKIPPED: Debian's kubectl (package kubernetes-client) is not here:" \
          "/usr/bin/kubectl belongs to ${owner:-no package} and" \
          "/opt/farm/kubernetes-client is empty (deploy/install-deps.sh installs or unpacks it)"
        exit 77
      fi
    fi
    echo "kubectl: $kubectl ($("$kubectl" version --client --short 2>/dev/null || true))"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    # The Secrets' files are the operator's: placeholders stand in for them.
    cp -r "$here" "$work/kubernetes"
    for f in ca.crt coordinator.crt coordinator.key secrets.key enroller.token; do
      echo placeholder >"$work/kubernetes/secrets/$f"
    done
    "$kubectl" kustomize "$work/kubernetes" >"$work/built.yaml"
    echo "kubectl kustomize: $(grep -c '^kind:' "$work/built.yaml") objects"
    exec "${checker[@]}" --built="$work/built.yaml" --self-test
    ;;
  *)
    echo "usage: $0 check|kubectl" >&2
    exit 64
    ;;
esac
