#!/usr/bin/env python3
"""Checks the farm's Kubernetes manifests (deploy/kubernetes) for what each kind needs and for
the farm's own invariants, offline (no cluster):

  check_manifests.py --kustomization=DIR --source=REPO [--built=FILE] [--self-test]

Without --built it reads kustomization.yaml itself: its resources, and its ConfigMap and Secret
generators as objects (without kustomize's hash suffix; the files they name need not exist).
With --built it checks FILE instead, the output of `kubectl kustomize DIR` (hashed names, every
reference rewritten). --source is the repository, whose flags the manifests' arguments and the
coordinator's config file must name. --self-test also breaks the manifests on purpose, one
invariant at a time, and fails unless the checker reports each one.

Prints one line per problem and exits 1 when there is any; 0 with a summary otherwise.
"""

import argparse
import copy
import glob
import os
import re
import sys

import yaml

NAMESPACE = "farm"
COORDINATOR = "farm-coordinator"
AGENT = "farm-agent"
PROBE = "/usr/bin/farm-health-probe"
CONFIG_PATH = "/etc/farm/coordinator.yaml"
# What the agent's preStop hook and grace period must leave after the drain: a minute.
DRAIN_MARGIN_S = 60

REQUIRED = {
    "Namespace": [],
    "ConfigMap": ["data"],
    "Secret": [],
    "Service": ["spec.selector", "spec.ports"],
    "StatefulSet": ["spec.replicas", "spec.serviceName", "spec.selector.matchLabels",
                    "spec.template.metadata.labels", "spec.template.spec.containers",
                    "spec.volumeClaimTemplates"],
    "Deployment": ["spec.selector.matchLabels", "spec.template.metadata.labels",
                   "spec.template.spec.containers"],
    "HorizontalPodAutoscaler": ["spec.scaleTargetRef.kind", "spec.scaleTargetRef.name",
                                "spec.maxReplicas", "spec.metrics"],
    "PodDisruptionBudget": ["spec.selector.matchLabels"],
}
API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "StatefulSet": "apps/v1", "Deployment": "apps/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2", "PodDisruptionBudget": "policy/v1",
}


def get(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def load_yaml_documents(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_kustomization(directory):
    """The objects kustomize would make, without hash suffixes or reference rewriting."""
    kustomization = load_yaml_documents(os.path.join(directory, "kustomization.yaml"))[0]
    objects = []
    for resource in kustomization.get("resources", []):
        objects.extend(load_yaml_documents(os.path.join(directory, resource)))
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for generator in kustomization.get(key, []):
            data = {}
            for entry in generator.get("files", []):
                name, _, path = entry.partition("=")
                if not path:
                    path, name = name, os.path.basename(name)
                full = os.path.join(directory, path)
                # Secrets' files are the user's (never committed): a placeholder stands in.
                data[name] = open(full, encoding="utf-8").read() if kind == "ConfigMap" else ""
            for entry in generator.get("literals", []):
                name, _, value = entry.partition("=")
                data[name] = value
            objects.append({"apiVersion": "v1", "kind": kind,
                            "metadata": {"name": generator["name"]}, "data": data})
    for obj in objects:
        if obj.get("kind") != "Namespace" and "namespace" in kustomization:
            obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return objects


def flag_names(source, folders):
    """Every absl flag the .cc files under `folders` define."""
    names = set()
    for folder in folders:
        for path in glob.glob(os.path.join(source, folder, "**", "*.cc"), recursive=True):
            text = open(path, encoding="utf-8").read()
            names.update(re.findall(r"ABSL_FLAG\(\s*[^,]+,\s*(\w+)\s*,", text))
    return names


def duration_seconds(text):
    """"30m", "1h30m", "90s", "500ms" → seconds; None when it is not a duration."""
    parts = re.findall(r"(\d+)(ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(int(n) * unit[u] for n, u in parts)


def flag_value(args, name):
    for arg in args:
        if arg.startswith("--" + name + "="):
            return arg.split("=", 1)[1]
    return None


class Checker:
    def __init__(self, objects, coordinator_flags, agent_flags):
        self.objects = objects
        self.coordinator_flags = coordinator_flags
        self.agent_flags = agent_flags
        self.problems = []

    def problem(self, obj, message):
        name = f"{obj.get('kind', '?')}/{get(obj, 'metadata.name', '?')}" if obj else "manifests"
        self.problems.append(f"{name}: {message}")

    def find(self, kind, name=None):
        return [o for o in self.objects
                if o.get("kind") == kind and (name is None or get(o, "metadata.name") == name)]

    def one(self, kind, name):
        found = self.find(kind, name)
        if len(found) != 1:
            self.problem(None, f"expected one {kind} named {name}, found {len(found)}")
            return None
        return found[0]

    def run(self):
        for obj in self.objects:
            self.check_common(obj)
        coordinator = self.one("StatefulSet", COORDINATOR)
        if coordinator:
            self.check_coordinator(coordinator)
        agent = self.one("Deployment", AGENT)
        if agent:
            self.check_agent(agent)
        for hpa in self.find("HorizontalPodAutoscaler"):
            self.check_hpa(hpa)
        if not self.find("HorizontalPodAutoscaler"):
            self.problem(None, "no HorizontalPodAutoscaler for the agents")
        for pdb in self.find("PodDisruptionBudget"):
            self.check_pdb(pdb, agent)
        if not self.find("PodDisruptionBudget"):
            self.problem(None, "no PodDisruptionBudget for the agents")
        for service in self.find("Service"):
            self.check_service(service)
        for workload in self.find("StatefulSet") + self.find("Deployment"):
            self.check_references(workload)
        return self.problems

    def check_common(self, obj):
        kind = obj.get("kind")
        if kind not in REQUIRED:
            self.problem(obj, f"a kind the checker does not know: {kind}")
            return
        if obj.get("apiVersion") != API_VERSIONS[kind]:
            self.problem(obj, f"apiVersion {obj.get('apiVersion')}, expected {API_VERSIONS[kind]}")
        if not get(obj, "metadata.name"):
            self.problem(obj, "no metadata.name")
        if kind != "Namespace" and get(obj, "metadata.namespace") != NAMESPACE:
            self.problem(obj, f"not in namespace {NAMESPACE}")
        for path in REQUIRED[kind]:
            if get(obj, path) in (None, [], {}):
                self.problem(obj, f"{path} is missing")
        if kind in ("StatefulSet", "Deployment"):
            selector = get(obj, "spec.selector.matchLabels", {}) or {}
            labels = get(obj, "spec.template.metadata.labels", {}) or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                self.problem(obj, "spec.selector does not select the pod template's labels")
            for container in self.containers(obj):
                if not container.get("image"):
                    self.problem(obj, f"container {container.get('name')} has no image")

    @staticmethod
    def containers(workload, init=True):
        spec = get(workload, "spec.template.spec", {}) or {}
        return (spec.get("initContainers", []) if init else []) + spec.get("containers", [])

    def mounted(self, workload, container, path):
        """True when `path` lies in one of `container`'s volume mounts of a defined volume."""
        volumes = {v.get("name") for v in get(workload, "spec.template.spec.volumes", []) or []}
        volumes |= {get(t, "metadata.name") for t in get(workload, "spec.volumeClaimTemplates",
                                                         []) or []}
        for mount in container.get("volumeMounts", []):
            root = mount.get("mountPath", "").rstrip("/")
            if mount.get("name") in volumes and (path == root or path.startswith(root + "/")):
                return True
        return False

    def check_flags(self, workload, container, args, known):
        for arg in args:
            match = re.match(r"--(\w+)(=|$)", arg)
            if not match or match.group(1) not in known:
                self.problem(workload, f"container {container.get('name')}: {arg!r} is not a "
                                       "flag of the binary")

    def check_probe(self, workload, container, which):
        probe = container.get(which)
        if not probe:
            self.problem(workload, f"container {container.get('name')} has no {which}")
            return
        if "grpc" in probe:
            return
        command = get(probe, "exec.command", []) or []
        if not command or command[0] != PROBE:
            self.problem(workload, f"{which} neither a grpc probe nor {PROBE}")
            return
        ca = flag_value(command, "tls_ca")
        if ca is None and "--insecure" not in command:
            self.problem(workload, f"{which}: {PROBE} without --tls_ca")
        elif ca is not None and not self.mounted(workload, container, ca):
            self.problem(workload, f"{which}: --tls_ca={ca} is not on a mounted volume")
        timeout = duration_seconds(flag_value(command, "timeout") or "5s") or 0
        if timeout >= probe.get("timeoutSeconds", 1):
            self.problem(workload, f"{which}: the probe's --timeout is not below timeoutSeconds")

    def check_coordinator(self, sts):
        if get(sts, "spec.replicas") != 1:
            self.problem(sts, "the coordinator is one writer: spec.replicas must be 1")
        templates = get(sts, "spec.volumeClaimTemplates", []) or []
        if not templates or not get(templates[0], "spec.resources.requests.storage"):
            self.problem(sts, "no volumeClaimTemplate with a storage request")
        containers = self.containers(sts, init=False)
        if len(containers) != 1:
            self.problem(sts, "expected one container")
            return
        container = containers[0]
        for which in ("readinessProbe", "livenessProbe"):
            self.check_probe(sts, container, which)
        claims = {get(t, "metadata.name") for t in templates}
        data_mounts = [m for m in container.get("volumeMounts", [])
                       if m.get("mountPath") == "/var/lib/farm"]
        if not data_mounts or data_mounts[0].get("name") not in claims:
            self.problem(sts, "/var/lib/farm is not the volumeClaimTemplate's volume")
        if not get(sts, "spec.template.spec.securityContext.runAsNonRoot"):
            self.problem(sts, "the coordinator must run as non-root (runAsNonRoot)")
        args = container.get("args", [])
        self.check_flags(sts, container, args, self.coordinator_flags)
        if flag_value(args, "config") != CONFIG_PATH:
            self.problem(sts, f"no --config={CONFIG_PATH}")
        self.check_config(sts, container)
        service = get(sts, "spec.serviceName")
        headless = self.find("Service", service)
        if not headless or get(headless[0], "spec.clusterIP") != "None":
            self.problem(sts, f"serviceName {service} is not a headless Service")

    def check_config(self, sts, container):
        """The config file is mounted from a ConfigMap key, and its keys are coordinator flags."""
        mounts = [m for m in container.get("volumeMounts", [])
                  if m.get("mountPath") == CONFIG_PATH]
        volumes = {v.get("name"): v for v in get(sts, "spec.template.spec.volumes", []) or []}
        if not mounts or "configMap" not in volumes.get(mounts[0].get("name"), {}):
            self.problem(sts, f"{CONFIG_PATH} is not mounted from a ConfigMap")
            return
        name = volumes[mounts[0]["name"]]["configMap"].get("name")
        config_maps = self.find("ConfigMap", name)
        key = mounts[0].get("subPath")
        if not config_maps or key not in (config_maps[0].get("data") or {}):
            self.problem(sts, f"ConfigMap {name} has no key {key}")
            return
        config = yaml.safe_load(config_maps[0]["data"][key]) or {}
        for flag in config:
            if flag not in self.coordinator_flags:
                self.problem(sts, f"{key}: {flag!r} is not a flag of farm-coordinator")
        for flag in ("tls_cert", "tls_key", "tls_client_ca", "secrets_key_file"):
            if flag in config and not self.mounted(sts, container, str(config[flag])):
                self.problem(sts, f"{key}: {flag}={config[flag]} is not on a mounted volume")

    def check_agent(self, deployment):
        agents = [c for c in self.containers(deployment, init=False) if c.get("name") == "agent"]
        if not agents:
            self.problem(deployment, "no container named agent")
            return
        agent = agents[0]
        args = agent.get("args", [])
        self.check_flags(deployment, agent, args, self.agent_flags)
        if flag_value(args, "slots") is None:
            self.problem(deployment, "no --slots (one slot per pod by default)")
        for flag in ("tls_ca", "enroll_token_file"):
            path = flag_value(args, flag)
            if path is None or not self.mounted(deployment, agent, path):
                self.problem(deployment, f"--{flag} is missing or not on a mounted volume")
        if not get(agent, "lifecycle.preStop.exec.command"):
            self.problem(deployment, "the agent has no preStop hook to drain it")
        drain = duration_seconds(flag_value(args, "drain_timeout") or "10m")
        grace = get(deployment, "spec.template.spec.terminationGracePeriodSeconds", 30)
        if drain is None or grace < drain + DRAIN_MARGIN_S:
            self.problem(deployment, f"terminationGracePeriodSeconds {grace} is not at least "
                                     f"--drain_timeout ({drain} s) + {DRAIN_MARGIN_S} s")

    def check_hpa(self, hpa):
        target = get(hpa, "spec.scaleTargetRef", {}) or {}
        if target.get("kind") != "Deployment" or not self.find("Deployment", target.get("name")):
            self.problem(hpa, f"scaleTargetRef {target.get('kind')}/{target.get('name')} is not "
                              "a Deployment here")
        elif target.get("name") != AGENT:
            self.problem(hpa, f"scales {target.get('name')}, not {AGENT}")
        external = [m for m in get(hpa, "spec.metrics", []) or [] if m.get("type") == "External"]
        if not any(get(m, "external.metric.name") == "farm_queue_depth" for m in external):
            self.problem(hpa, "no External metric farm_queue_depth")
        for metric in external:
            for key, value in (get(metric, "external.metric.selector.matchLabels", {}) or
                               {}).items():
                if not re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", str(value)):
                    self.problem(hpa, f"selector {key}={value!r} is not a valid label value")
            if get(metric, "external.target.type") not in ("AverageValue", "Value"):
                self.problem(hpa, "the external target is neither AverageValue nor Value")
        if get(hpa, "spec.minReplicas", 1) > get(hpa, "spec.maxReplicas", 0):
            self.problem(hpa, "minReplicas is above maxReplicas")

    def check_pdb(self, pdb, agent):
        selector = get(pdb, "spec.selector.matchLabels", {}) or {}
        labels = get(agent, "spec.template.metadata.labels", {}) if agent else {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            self.problem(pdb, "does not select the agent pods")

    def check_service(self, service):
        selector = get(service, "spec.selector", {}) or {}
        pods = [w for w in self.find("StatefulSet") + self.find("Deployment")
                if all(get(w, "spec.template.metadata.labels", {}).get(k) == v
                       for k, v in selector.items())]
        if not selector or not pods:
            self.problem(service, "selects no workload's pods")
            return
        ports = {p.get("name") for c in self.containers(pods[0], init=False)
                 for p in c.get("ports", [])}
        for port in get(service, "spec.ports", []) or []:
            target = port.get("targetPort")
            if isinstance(target, str) and target not in ports:
                self.problem(service, f"targetPort {target} is no container port")

    def check_references(self, workload):
        """Every Secret and ConfigMap a workload names exists, with the keys it names."""
        spec = get(workload, "spec.template.spec", {}) or {}
        refs = []
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                refs.append(("Secret", volume["secret"].get("secretName")))
            if "configMap" in volume:
                refs.append(("ConfigMap", volume["configMap"].get("name")))
        for container in self.containers(workload):
            for env in container.get("env", []):
                for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                    ref = get(env, "valueFrom." + key)
                    if ref:
                        refs.append((kind, ref.get("name")))
            for source in container.get("envFrom", []):
                for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if key in source:
                        refs.append((kind, source[key].get("name")))
        for kind, name in refs:
            if not self.find(kind, name):
                self.problem(workload, f"names {kind} {name}, which the kustomization lacks")


# Each breaks one invariant of good manifests; the checker must report it (a word of its line).
def _set(kind, name, path, value):
    def mutate(objects):
        for obj in objects:
            if obj.get("kind") == kind and get(obj, "metadata.name") == name:
                parts = path.split(".")
                target = obj
                for part in parts[:-1]:
                    target = target[int(part)] if isinstance(target, list) else target[part]
                if value is None:
                    del target[parts[-1]]
                else:
                    target[parts[-1]] = value
    return mutate


SPEC = "spec.template.spec"
MUTATIONS = [
    ("two coordinators", _set("StatefulSet", COORDINATOR, "spec.replicas", 2), "replicas"),
    ("no volume claim", _set("StatefulSet", COORDINATOR, "spec.volumeClaimTemplates", []),
     "volumeClaimTemplate"),
    ("no readiness probe",
     _set("StatefulSet", COORDINATOR, SPEC + ".containers.0.readinessProbe", None),
     "readinessProbe"),
    ("no liveness probe",
     _set("StatefulSet", COORDINATOR, SPEC + ".containers.0.livenessProbe", None),
     "livenessProbe"),
    ("no preStop", _set("Deployment", AGENT, SPEC + ".containers.0.lifecycle", None), "preStop"),
    ("a short grace period",
     _set("Deployment", AGENT, SPEC + ".terminationGracePeriodSeconds", 30),
     "terminationGracePeriodSeconds"),
    ("the HPA scales something else",
     _set("HorizontalPodAutoscaler", AGENT, "spec.scaleTargetRef.name", "farm-agents"),
     "scaleTargetRef"),
    ("another metric", _set("HorizontalPodAutoscaler", AGENT,
                            "spec.metrics.0.external.metric.name", "queue"), "farm_queue_depth"),
    ("a label set as a selector value",
     _set("HorizontalPodAutoscaler", AGENT, "spec.metrics.0.external.metric.selector",
          {"matchLabels": {"labels": "pool=builders"}}), "valid label value"),
    ("a PDB for other pods",
     _set("PodDisruptionBudget", AGENT, "spec.selector.matchLabels", {"app": "x"}),
     "agent pods"),
    ("an unknown Secret", _set("Deployment", AGENT, SPEC + ".volumes.2.secret.secretName",
                               "farm-missing"), "farm-missing"),
    ("an agent flag that does not exist",
     _set("Deployment", AGENT, SPEC + ".containers.0.args", ["--coordinator=x:1", "--slot=1"]),
     "--slot=1"),
    ("a config key that is no flag",
     lambda objects: [o["data"].update({"coordinator.yaml": "listen: x\nlease_tll: 30s\n"})
                      for o in objects if o.get("kind") == "ConfigMap"], "lease_tll"),
    ("the coordinator as root",
     _set("StatefulSet", COORDINATOR, SPEC + ".securityContext.runAsNonRoot", None),
     "non-root"),
]


def self_test(objects, coordinator_flags, agent_flags):
    failures = []
    for what, mutate, expected in MUTATIONS:
        broken = copy.deepcopy(objects)
        try:
            mutate(broken)
        except (KeyError, IndexError, TypeError) as error:
            failures.append(f"self-test {what!r}: cannot apply it ({error!r})")
            continue
        problems = Checker(broken, coordinator_flags, agent_flags).run()
        if not any(expected in p for p in problems):
            failures.append(f"self-test {what!r}: not reported (expected {expected!r}; got "
                            f"{problems})")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kustomization", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--built")
    parser.add_argument("--self-test", action="store_true")
    options = parser.parse_args()
    objects = (load_yaml_documents(options.built) if options.built
               else load_kustomization(options.kustomization))
    # --config comes with the coordinator's config file (issue 13's configuration part).
    coordinator_flags = flag_names(options.source, ["coordinator"]) | {"config"}
    agent_flags = flag_names(options.source, ["agent"])
    if "data_dir" not in coordinator_flags or "work_dir" not in agent_flags:
        print(f"cannot find the binaries' flags under {options.source}")
        return 1
    problems = Checker(objects, coordinator_flags, agent_flags).run()
    if options.self_test and not problems:
        problems = self_test(objects, coordinator_flags, agent_flags)
    for p in problems:
        print(p)
    if problems:
        return 1
    kinds = sorted({o["kind"] for o in objects})
    print(f"{len(objects)} objects ({', '.join(kinds)}) meet every check"
          + (f"; the self-test broke them {len(MUTATIONS)} ways, each reported"
             if options.self_test else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
