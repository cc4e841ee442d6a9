"""The stand-in host: real runtime processes on 127.0.0.1 behind KWOK pods on stand-in nodes.

KWOK pods run no containers, yet the planner must call each serving pod's admin API and a benchmark
must send real inferences to a Service's ready endpoints. Traffic may only go to 127.0.0.1 or to
pods that really run here (docs/local-cluster.md), never to a KWOK pod's made-up IP. So a
:class:`StandInHost` list-watches the pods on nodes labelled ``outrider.dev/stand-in=true`` and,
for every Running pod whose container runs ``outrider runtime serve --config FILE``, runs that
runtime with the pod's config and env as a local process (one :class:`~.standin_workers.PodWorker`
each), annotates the pod ``outrider.dev/stand-in-endpoint: 127.0.0.1:<port>`` and plays the
kubelet's readiness prober, so the Deployment and EndpointSlice controllers see the truth.

Emulated: readiness probes (httpGet, tcpSocket; period, timeout, initial delay, thresholds), the
Ready/ContainersReady conditions and container statuses, restarts with back-off, SIGTERM then
SIGKILL after the grace period on deletion. Not emulated: liveness and startup probes, resource
limits, volumes other than the config, env from ConfigMaps/Secrets, the pod IP (the process listens
on 127.0.0.1 only). Pods on other nodes are never touched.

Usage::

    with StandInHost(kubeconfig, workdir) as host:
        ...
        host.endpoint("ns", "pod-name")        # "127.0.0.1:41234" once hosted, else None
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from .errors import StandInError
from .kube import api_client
from .processes import ProcessTable
from .standin_specs import is_deleting, plan_for, pod_key
from .standin_workers import PodWorker, WorkerContext
from .topology import STAND_IN_LABEL

__all__ = ["StandInHost"]

log = logging.getLogger("outrider_devcluster.standins")


def _default_runtime() -> list[str]:
    exe = Path(sys.executable).parent / "outrider"
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "outrider_cli"]


class StandInHost:
    """Runs local runtime processes for the pods on stand-in nodes (see the module docstring).

    ``workdir`` receives ``configs/``, ``logs/<ns>.<pod>.<uid>.log``, ``pids/`` and the shared model
    cache ``cache/`` (``OUTRIDER_CACHE_DIR`` of every process). At most ``max_processes`` pods are
    hosted at once; others are left unhosted (not ready) with a log line, until a slot frees.
    ``grace_s`` is the SIGTERM to SIGKILL delay; ``runtime`` the ``outrider`` command (default:
    the one beside this Python, i.e. the venv's); ``namespaces`` limits hosting to those namespaces
    (a test hosts only its own pods; default: all).

    One host per cluster at a time: two would each run a process for the same pod. The e2e tests
    refuse a cluster where the command-line host runs (it records ``.cluster/pids/outrider-stand-ins.pid``).
    """

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        *,
        max_processes: int = 16,
        grace_s: float = 35.0,
        runtime: list[str] | None = None,
        namespaces: Iterable[str] | None = None,
    ) -> None:
        if max_processes < 1:
            raise ValueError("max_processes must be at least 1")
        self.kubeconfig = kubeconfig
        self.workdir = workdir
        self.max_processes = max_processes
        self.cache_dir = workdir / "cache"
        self.namespaces = frozenset(namespaces) if namespaces is not None else None
        self._runtime = runtime or _default_runtime()
        self._api = api_client(kubeconfig)
        self._watch_api = api_client(kubeconfig, pool=2)
        self._ctx = WorkerContext(
            api=self._api,
            table=ProcessTable(workdir / "pids", workdir / "logs"),
            config_dir=workdir / "configs",
            env={"OUTRIDER_CACHE_DIR": str(self.cache_dir)},
            runtime=self._runtime,
            prepare=self._prebuild,
            grace_s=grace_s,
        )
        self._lock = threading.RLock()
        self._workers: dict[tuple[str, str], PodWorker] = {}
        self._retired: list[PodWorker] = []
        self._waiting: dict[tuple[str, str], dict[str, Any]] = {}
        self._refused: set[str] = set()
        self._nodes: dict[str, bool] = {}
        self._built: set[str] = set()
        self._build_lock = threading.Lock()
        self._stopped = threading.Event()
        self._synced = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stand-in watch", daemon=True)

    # ------------------------------------------------------------------ public

    def start(self, timeout_s: float = 30.0) -> StandInHost:
        """Stop processes a crashed earlier host left in ``workdir``, then list and watch the pods.

        Returns once the first list was handled (raises TimeoutError if it was not in time).
        """
        for proc in self._ctx.table.recorded():
            if proc.stop(5.0):
                log.info("stopped a runtime left by an earlier host: %s (pid %s)", proc.component, proc.pid)
            self._ctx.table.forget(proc.component)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        if not self._synced.wait(timeout_s):
            self.stop()
            raise TimeoutError(f"the stand-in host could not list pods within {timeout_s:.0f}s")
        return self

    def stop(self) -> None:
        """Terminate every process this host started (SIGTERM, grace, SIGKILL) and stop watching."""
        self._stopped.set()
        with self._lock:
            active, retired = list(self._workers.values()), list(self._retired)
        for worker in active:
            worker.stop(unhost=True)  # its pod stays: mark it not ready, drop the endpoint
        for worker in [*active, *retired]:  # retired ones were told to stop when their pod went
            worker.join()
        self._thread.join(timeout=15)
        self._api.close()  # type: ignore[no-untyped-call]
        self._watch_api.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> StandInHost:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def endpoint(self, namespace: str, name: str) -> str | None:
        """``127.0.0.1:<httpPort>`` of a hosted pod, else None (the pod's stand-in-endpoint annotation)."""
        with self._lock:
            worker = self._workers.get((namespace, name))
            return worker.endpoint if worker is not None else None

    def hosted(self) -> dict[str, str | None]:
        """``namespace/name`` -> endpoint of every pod hosted now."""
        with self._lock:
            return {f"{ns}/{name}": w.endpoint for (ns, name), w in self._workers.items()}

    def pid(self, namespace: str, name: str) -> int | None:
        """PID of a hosted pod's runtime process while it runs."""
        with self._lock:
            worker = self._workers.get((namespace, name))
            return worker.pid if worker is not None else None

    def pids(self) -> list[int]:
        """PIDs of the runtime processes running now."""
        with self._lock:
            workers = [*self._workers.values(), *self._retired]
        return [pid for w in workers if (pid := w.pid) is not None]

    # ------------------------------------------------------------------ pods

    def _is_stand_in(self, node: str) -> bool:
        if node not in self._nodes:
            try:
                resp: Any = k8s.CoreV1Api(self._watch_api).read_node(node, _preload_content=False)
                labels = json.loads(resp.data).get("metadata", {}).get("labels") or {}
                self._nodes[node] = labels.get(STAND_IN_LABEL) == "true"
            except ApiException as exc:
                if exc.status != 404:
                    raise
                return False
        return self._nodes[node]

    def _handle(self, pod: dict[str, Any], gone: bool = False) -> None:
        key = pod_key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        uid = (pod.get("metadata") or {}).get("uid", "")
        with self._lock:
            worker = self._workers.get(key)
            if worker is not None and (gone or is_deleting(pod) or worker.plan.uid != uid):
                log.info("%s/%s is being deleted; stopping its runtime", *key)
                self._retire(key)
                worker = None
            ignored = self.namespaces is not None and key[0] not in self.namespaces
            if gone or is_deleting(pod) or not node or ignored or self._stopped.is_set():
                self._waiting.pop(key, None)
                return
            phase = (pod.get("status") or {}).get("phase")
            if (
                worker is not None
                or phase != "Running"
                or uid in self._refused
                or not self._is_stand_in(node)
            ):
                return
            if len(self._workers) + len(self._retired) >= self.max_processes:
                if key not in self._waiting:
                    log.warning(
                        "%s/%s not hosted: %d runtimes run already (max_processes)", *key, self.max_processes
                    )
                self._waiting[key] = pod
                return
            self._waiting.pop(key, None)
            try:
                plan = plan_for(pod)
            except StandInError as exc:
                self._refused.add(uid)
                log.error("%s/%s on stand-in node %s cannot be hosted: %s", *key, node, exc)
                return
            restarts = sum(
                int(c.get("restartCount") or 0)
                for c in (pod.get("status") or {}).get("containerStatuses") or []
                if c.get("name") == plan.container
            )
            worker = PodWorker(plan, self._ctx, self._worker_exited, restart_count=restarts)
            self._workers[key] = worker
            worker.start()

    def _retire(self, key: tuple[str, str]) -> None:
        worker = self._workers.pop(key)
        worker.stop()
        self._retired.append(worker)

    def _worker_exited(self, worker: PodWorker) -> None:
        with self._lock:
            key = (worker.plan.namespace, worker.plan.name)
            if self._workers.get(key) is worker:
                del self._workers[key]
            if worker in self._retired:
                self._retired.remove(worker)
            if worker.failed:
                self._refused.add(worker.plan.uid)  # it stays unhosted (and not ready)
            waiting = list(self._waiting.values())
        for pod in waiting:
            self._handle(pod)

    def _prebuild(self, rendered: str) -> None:
        """Build a builtin model once, before the first runtime needs it.

        The runtime's own build is safe under concurrency (it renames a finished folder into
        place), but several processes building at once would each spend the CPU; this serialises it.
        """
        uri = str(
            ((yaml.safe_load(rendered) or {}).get("model") or {}).get("uri") or "builtin:all-minilm-l6-v2"
        )
        if not uri.startswith("builtin:"):
            return
        name = uri.removeprefix("builtin:")
        with self._build_lock:
            if name in self._built:
                return
            proc = subprocess.run(
                [*self._runtime, "runtime", "build-model", name],
                env={**os.environ, **self._ctx.env},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                log.warning(
                    "pre-building %s failed (the runtime will try itself): %s", name, proc.stderr[-500:]
                )
                return
            self._built.add(name)

    # ------------------------------------------------------------------ watch

    def _watch(self) -> None:
        from kubernetes import watch

        core = k8s.CoreV1Api(self._watch_api)
        watcher: Any = watch  # the watch module has no type hints
        backoff = 1.0
        while not self._stopped.is_set():
            try:
                resp: Any = core.list_pod_for_all_namespaces(
                    _preload_content=False, _request_timeout=(10, 60)
                )
                body = json.loads(resp.data)
                listed = {pod_key(p): p for p in body.get("items", [])}
                with self._lock:
                    vanished = [k for k in self._workers if k not in listed]
                    for key in vanished:
                        self._retire(key)
                for pod in listed.values():
                    self._handle(pod)
                self._synced.set()
                version = body.get("metadata", {}).get("resourceVersion")
                while not self._stopped.is_set():
                    w = watcher.Watch()
                    for event in w.stream(
                        core.list_pod_for_all_namespaces,
                        resource_version=version,
                        timeout_seconds=5,
                        allow_watch_bookmarks=True,
                        _request_timeout=(10, 30),
                    ):
                        obj = event.get("raw_object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            self._handle(obj, gone=event.get("type") == "DELETED")
                        if self._stopped.is_set():
                            w.stop()
                            break
                backoff = 1.0
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watching pods failed (HTTP %s); relisting in %.0fs", exc.status, backoff)
                    self._stopped.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
            except Exception as exc:
                if self._stopped.is_set():
                    return
                log.warning("watching pods failed (%s); relisting in %.0fs", exc, backoff)
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 30.0)
