"""The operator at fleet scale: N InferenceDeployments on a cluster of simulated nodes.

Runs its own cluster (a temporary folder, its own ports, 25 KWOK nodes, no real node) and the
operator as a local process with a token of its own ServiceAccount (``outrider-system/
outrider-operator``, the chart's RBAC rules), at its default settings (resync every 30 s). Then:

* creates ``--objects`` InferenceDeployments (CPU-only, one active pod each, no standby pods) from 8
  threads, and measures from the first create to all 6 children of every object present
  (``children_present_s``: ConfigMap, Service, PDB and three Deployments; counted every second
  with metadata-only lists) and to every object ``Ready=True`` (``all_ready_s``, pods made Ready
  by KWOK; the objects are listed every 2 s once the children exist);
* ``operator_rss_mib``: the operator's resident memory once all are Ready (and the peak, sampled
  every second);
* ``idle_requests_per_s_per_100``: with nothing changing, the operator's API requests over
  ``--idle`` seconds (counted in the apiserver's audit log, which records that account's requests
  only), per second and per 100 Ready objects, with the split by verb and resource, and the
  operator's CPU over that window (``idle_cpu_percent`` of one core);
* ``drift_repair_p99_s``: ``--drifts`` times, one object's Service is deleted or its Deployment
  scaled; the time until the operator has put it back (p99 and median).

Progress goes to stderr; the JSON is printed and written to ``bench/results/operator.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from benchkube import kubectl
from outrider_devcluster import Cluster, ClusterSettings, Ports, ensure_binaries, load_topology
from outrider_devcluster.configs import AUDITED_USERS
from outrider_devcluster.kube import api_client, request_token, token_kubeconfig
from outrider_devcluster.processes import rss_bytes
from outrider_devcluster.workloads import free_port
from outrider_operator.api import labels
from outrider_operator.rbac import ALL_RULES
from report import emit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "operator.json"
NS = "bench-fleet"
SYSTEM_NS, ACCOUNT = AUDITED_USERS[0].split(":")[2:4]
GROUP, VERSION, PLURAL = labels.API_GROUP, labels.API_VERSION, labels.PLURAL
CHILDREN_PER_OBJECT = 6


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def spec() -> dict[str, Any]:
    """A small CPU-only deployment: one active pod, no standby pods (the children exist all the same)."""
    return {
        "model": {"name": "minilm", "uri": "builtin:all-minilm-l6-v2"},
        "runtime": {"gpusPerReplica": 0, "resources": {"cpu": "100m", "memory": "256Mi"}},
        "replicas": {"min": 1, "max": 1},
        "standby": {"warm": 0, "cold": 0},
    }


def install_operator_account(settings: ClusterSettings, binary: Path) -> None:
    """The operator's namespace, ServiceAccount and the chart's RBAC rules (cluster-wide)."""
    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NS}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT, "namespace": SYSTEM_NS}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "bench-outrider-operator"},
            "rules": ALL_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "bench-outrider-operator"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "bench-outrider-operator",
            },
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": SYSTEM_NS}],
        },
    ]
    kubectl(settings, binary, "apply", "--server-side", "-f", str(REPO / "crds"), timeout_s=300)
    kubectl(settings, binary, "wait", "--for=condition=Established", "--timeout=60s",
            f"crd/{PLURAL}.{GROUP}", timeout_s=300)  # fmt: skip
    kubectl(settings, binary, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs), timeout_s=300)


def start_operator(settings: ClusterSettings, work: Path, source: Path | None) -> subprocess.Popen[bytes]:
    with api_client(settings.kubeconfig) as api:
        token = request_token(api, SYSTEM_NS, ACCOUNT, seconds=24 * 3600)
    config = token_kubeconfig(settings.kubeconfig, token)
    kubeconfig = work / "operator.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    argv = [sys.executable, "-m", "outrider_operator.main", "--kubeconfig", str(kubeconfig),
            "--metrics-port", str(free_port()), "--health-port", str(free_port())]  # fmt: skip
    log_file = (work / "operator.log").open("wb")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    if source is not None:  # another checkout's operator (a baseline), ahead of the installed one
        env["PYTHONPATH"] = os.pathsep.join([str(source / "operator"), env.get("PYTHONPATH", "")])
    return subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO)


class RssSampler:
    """Samples a process's resident memory every second, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self) -> float:
        return rss_bytes(self.pid) / 2**20

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.peak = max(self.peak, self.now())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _metadata(api: k8s.ApiClient, path: str, selector: str) -> list[dict[str, Any]]:
    """A LIST as metadata only (light on the apiserver: counting, not reading)."""
    accept = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
    method, url, headers, body, _ = api.param_serialize(
        method="GET",
        resource_path=path,
        query_params=[("labelSelector", selector)],
        header_params={"Accept": accept},
        auth_settings=["BearerToken"],
    )
    resp = api.call_api(method, url, header_params=headers, body=body, _request_timeout=60)
    data = resp.read()  # type: ignore[no-untyped-call]
    return list(json.loads(data).get("items") or [])


CHILD_PATHS = (
    f"/api/v1/namespaces/{NS}/configmaps",
    f"/api/v1/namespaces/{NS}/services",
    f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
    f"/apis/apps/v1/namespaces/{NS}/deployments",
)


def count_children(api: k8s.ApiClient) -> int:
    managed = f"{labels.LABEL_MANAGED_BY}={labels.MANAGED_BY}"
    return sum(len(_metadata(api, path, managed)) for path in CHILD_PATHS)


def count_ready(custom: k8s.CustomObjectsApi) -> int:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)["items"]
    return sum(
        1
        for item in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (item.get("status") or {}).get("conditions") or []
        )
    )


def create_fleet(api: k8s.ApiClient, count: int) -> None:
    custom = k8s.CustomObjectsApi(api)

    def create(i: int) -> None:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": labels.KIND,
                "metadata": {"name": f"fleet-{i:04d}", "namespace": NS}, "spec": spec()}  # fmt: skip
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def audit_lines(path: Path, start: int) -> tuple[list[dict[str, Any]], int]:
    """Audit events written after byte ``start`` (and the new end)."""
    with path.open("rb") as f:
        f.seek(start)
        data = f.read()
    events = [json.loads(line) for line in data.splitlines() if line.strip()]
    return events, start + len(data)


def request_kind(event: dict[str, Any]) -> str:
    ref = event.get("objectRef") or {}
    resource = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    return f"{event.get('verb', '?')} {resource}"


def _repaired(core: k8s.CoreV1Api, apps: k8s.AppsV1Api, name: str, old_uid: str | None) -> bool:
    """Whether the drift made on ``name`` is gone (a new Service, or the Deployment back at 1)."""
    if old_uid is None:
        return bool(apps.read_namespaced_deployment(name, NS).spec.replicas == 1)
    try:
        return bool(core.read_namespaced_service(name, NS).metadata.uid != old_uid)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise


def drift_repairs(api: k8s.ApiClient, count: int, objects: int) -> list[float]:
    """Delete a Service or scale a Deployment of a random object; seconds until the operator repaired it."""
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    rng = random.Random(14)
    out: list[float] = []
    for i in range(count):
        name = f"fleet-{rng.randrange(objects):04d}"
        old_uid: str | None = None
        started = time.monotonic()
        if i % 2 == 0:
            old_uid = core.read_namespaced_service(name, NS).metadata.uid
            started = time.monotonic()
            core.delete_namespaced_service(name, NS)
        else:
            apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": 3}})
        while not _repaired(core, apps, name, old_uid):
            if time.monotonic() - started > 120:
                raise RuntimeError(f"drift of {name} not repaired within 120 s")
            time.sleep(0.05)
        out.append(time.monotonic() - started)
        log(f"    drift {i + 1}/{count} on {name}: repaired in {out[-1]:.2f}s")
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    base = ClusterSettings.from_env()
    binaries = ensure_binaries(base)
    result: dict[str, Any] = {
        "benchmark": "operator",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "objects": args.objects,
        "nodes": args.nodes,
        "operator_source": str(args.operator_src or REPO),
    }
    with tempfile.TemporaryDirectory(prefix="outrider-bench-operator-") as tmp:
        work = Path(tmp)
        settings = ClusterSettings(cluster_dir=work / "cluster", ports=Ports.from_base(32800),
                                   ready_timeout_s=120, real_nodes=0)  # fmt: skip
        cluster = Cluster(settings, say=lambda m: log(f"    {m}"))
        log(f"==> cluster with {args.nodes} simulated nodes")
        cluster.up(load_topology(nodes=args.nodes), build=False)
        operator: subprocess.Popen[bytes] | None = None
        try:
            install_operator_account(settings, binaries["kubectl"])
            operator = start_operator(settings, work, args.operator_src)
            time.sleep(3)
            if operator.poll() is not None:
                raise RuntimeError(f"the operator exited: {(work / 'operator.log').read_text()[-3000:]}")
            rss = RssSampler(operator.pid)
            audit = settings.cluster_dir / "logs" / "audit.log"
            with api_client(settings.kubeconfig) as api:
                custom = k8s.CustomObjectsApi(api)
                log(f"==> creating {args.objects} InferenceDeployments")
                started = time.monotonic()
                create_fleet(api, args.objects)
                result["create_s"] = round(time.monotonic() - started, 1)
                want = CHILDREN_PER_OBJECT * args.objects
                last = -1.0
                while "all_ready_s" not in result:
                    elapsed = time.monotonic() - started
                    if elapsed > args.timeout:
                        raise RuntimeError(f"not converged within {args.timeout} s: {result}")
                    if operator.poll() is not None:
                        raise RuntimeError(
                            f"the operator exited: {(work / 'operator.log').read_text()[-3000:]}"
                        )
                    # the harness must not load what it measures: metadata-only lists of the children
                    # until all exist, and only then the full list of objects (for Ready), every 2 s
                    children = count_children(api) if "children_present_s" not in result else want
                    if children >= want:
                        result.setdefault("children_present_s", round(time.monotonic() - started, 1))
                    ready = count_ready(custom) if "children_present_s" in result else 0
                    if ready >= args.objects:
                        result["all_ready_s"] = round(time.monotonic() - started, 1)
                    if elapsed - last >= 10:
                        log(f"    {elapsed:5.0f}s: {children}/{want} children, {ready}/{args.objects} Ready, "
                            f"operator RSS {rss.now():.0f} MiB")  # fmt: skip
                        last = elapsed
                    time.sleep(1.0 if "children_present_s" not in result else 2.0)
                log(
                    f"   children after {result['children_present_s']}s, Ready after {result['all_ready_s']}s"
                )
                result["operator_rss_mib"] = round(rss.now(), 1)
                log(f"==> idle: {args.settle:.0f}s to settle, then {args.idle:.0f}s counted")
                time.sleep(args.settle)
                _, mark = audit_lines(audit, 0)
                cpu_before = cpu_seconds(operator.pid)
                time.sleep(args.idle)
                events, _ = audit_lines(audit, mark)
                result["idle_cpu_percent"] = round(
                    100 * (cpu_seconds(operator.pid) - cpu_before) / args.idle, 2
                )
                per_s = len(events) / args.idle
                result["idle_requests"] = len(events)
                result["idle_requests_per_s"] = round(per_s, 2)
                result["idle_requests_per_s_per_100"] = round(per_s * 100 / args.objects, 3)
                result["idle_requests_by_kind"] = dict(Counter(request_kind(e) for e in events).most_common())
                result["operator_rss_idle_mib"] = round(rss.now(), 1)
                log(f"    {len(events)} requests in {args.idle:.0f}s ({per_s:.2f}/s)")
                log(f"==> {args.drifts} drifts")
                repairs = drift_repairs(api, args.drifts, args.objects)
                result["drift_repair_p99_s"] = round(p99(repairs), 2)
                result["drift_repair_median_s"] = round(statistics.median(repairs), 2)
            rss.stop()
            result["operator_rss_peak_mib"] = round(rss.peak, 1)
        finally:
            if operator is not None:
                operator.terminate()
                try:
                    operator.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    operator.kill()
                if args.keep_log:
                    args.keep_log.write_bytes((work / "operator.log").read_bytes())
            cluster.down()
    result["targets"] = {"children_present_s": 90, "all_ready_s": 180, "operator_rss_mib": 300,
                         "idle_requests_per_s_per_100": 1.0, "drift_repair_p99_s": 2.0}  # fmt: skip
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=1000, help="InferenceDeployments (default 1000)")
    ap.add_argument("--nodes", type=int, default=25, help="simulated nodes (default 25)")
    ap.add_argument("--settle", type=float, default=30.0, help="seconds after all Ready before counting")
    ap.add_argument("--idle", type=float, default=120.0, help="seconds of idle traffic counted (default 120)")
    ap.add_argument("--drifts", type=int, default=20, help="drift repairs timed (default 20)")
    ap.add_argument("--timeout", type=float, default=1200.0, help="give up converging after this (s)")
    ap.add_argument("--keep-log", type=Path, default=None, help="copy the operator's log here")
    ap.add_argument(
        "--operator-src", type=Path, default=None, help="run the operator of this checkout (a baseline)"
    )
    ap.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = ap.parse_args()
    emit(run(args), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
