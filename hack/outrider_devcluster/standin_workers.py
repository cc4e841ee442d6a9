"""One kubelet-like worker thread per stand-in pod: run its runtime locally, probe it, report status.

A :class:`PodWorker` reads the pod's runtime config from its ConfigMap, rewrites it for free ports
on 127.0.0.1 (:func:`~.standin_specs.render_config`), annotates the pod with the address, starts
``outrider runtime serve``, and then, like a kubelet: runs the readiness probe every period (with
the probe's failure and success thresholds), patches the pod's status subresource on every change
(``Ready`` and ``ContainersReady`` conditions, ``containerStatuses``), restarts a process that died
with a doubling back-off (1 s up to 30 s) and a bumped ``restartCount``. Asked to stop, it sends
SIGTERM (the runtime drains), waits up to the grace period and then sends SIGKILL.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from outrider_operator.api.labels import ANNOTATION_STAND_IN_ENDPOINT

from .errors import StandInError
from .processes import ManagedProcess, ProcessTable
from .standin_specs import PodPlan, Probe, render_config, status_patch

__all__ = ["PodWorker", "PortPool", "WorkerContext"]

log = logging.getLogger("outrider_devcluster.standins")

_STRATEGIC = "application/strategic-merge-patch+json"
_MERGE = "application/merge-patch+json"
MAX_BACKOFF_S = 30.0
"""Longest wait before restarting a process that keeps dying."""


class PortPool:
    """Hands out free ports of 127.0.0.1, never the same one twice while it is held."""

    def __init__(self) -> None:
        self._held: set[int] = set()
        self._lock = threading.Lock()

    def take(self) -> int:
        """A port nothing listens on now and that no other pod of this host holds."""
        with self._lock:
            while True:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = int(sock.getsockname()[1])
                if port not in self._held:
                    self._held.add(port)
                    return port

    def release(self, *ports: int) -> None:
        """Give ports back."""
        with self._lock:
            self._held.difference_update(ports)


@dataclass
class WorkerContext:
    """What every worker of one host shares."""

    api: k8s.ApiClient
    """Client for the pods' ConfigMaps and the status patches."""
    table: ProcessTable
    """Records each runtime's PID (``<workdir>/pids``) and gives it a log (``<workdir>/logs``)."""
    config_dir: Path
    """Where the rewritten configs go."""
    env: dict[str, str]
    """Added to every runtime's environment (``OUTRIDER_CACHE_DIR``)."""
    runtime: list[str]
    """The ``outrider`` command (argv prefix)."""
    prepare: Callable[[str], None]
    """Called with the rendered config before the first start (pre-builds a builtin model)."""
    grace_s: float = 35.0
    """SIGTERM to SIGKILL."""
    ports: PortPool = field(default_factory=PortPool)
    """Free local ports."""


class PodWorker:
    """Plays the kubelet for one pod (see the module docstring)."""

    def __init__(
        self, plan: PodPlan, ctx: WorkerContext, on_exit: Callable[[PodWorker], None], restart_count: int = 0
    ) -> None:
        self.plan = plan
        self.ctx = ctx
        self.on_exit = on_exit
        self.restart_count = restart_count
        self.endpoint: str | None = None
        """``127.0.0.1:<httpPort>`` once chosen."""
        self.stopping = threading.Event()
        self.failed = False
        """Set when the pod cannot be hosted (the host then leaves it alone)."""
        self._unhost = False
        self._process: ManagedProcess | None = None
        self._mapping: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, name=f"stand-in {plan.component}", daemon=True)
        self._core = k8s.CoreV1Api(ctx.api)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, *, unhost: bool = False) -> None:
        """Ask the worker to terminate its process and exit (returns at once; see ``join``).

        ``unhost``: the pod stays but this host goes away, so afterwards mark it not ready and
        drop its endpoint annotation (as a node going NotReady would); not for deleted pods.
        """
        self._unhost = unhost
        self.stopping.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the worker to finish; True when it has."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    @property
    def pid(self) -> int | None:
        """PID of the running process, if any."""
        proc = self._process
        return proc.pid if proc is not None and proc.alive() else None

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        p = self.plan
        ports: list[int] = []
        try:
            text = self._read_config()
            if text is None:
                return
            ports = [self.ctx.ports.take(), self.ctx.ports.take()]
            rendered, self._mapping = render_config(text, ports[0], ports[1])
            config = self.ctx.config_dir / f"{p.component}.yaml"
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(rendered)
            self.ctx.prepare(rendered)
            self.endpoint = f"127.0.0.1:{ports[0]}"
            self._patch({"metadata": {"annotations": {ANNOTATION_STAND_IN_ENDPOINT: self.endpoint}}}, _MERGE)
            if p.unresolved_env:
                log.warning("%s/%s: env not resolved: %s", p.namespace, p.name, ", ".join(p.unresolved_env))
            self._supervise([*self.ctx.runtime, "runtime", "serve", "--config", str(config), *p.extra_args])
        except StandInError as exc:
            self.failed = True
            log.error("%s/%s cannot be hosted: %s", p.namespace, p.name, exc)
        except Exception:  # a later event about the pod tries again
            log.exception("%s/%s: the stand-in worker failed", p.namespace, p.name)
        finally:
            if self._process is not None and self._process.stop(self.ctx.grace_s):
                log.info("%s/%s: runtime (pid %s) stopped", p.namespace, p.name, self._process.pid)
            if self._unhost and self.endpoint:
                self._leave()
            self.ctx.table.forget(p.component)
            self.ctx.ports.release(*ports)
            self.on_exit(self)

    def _read_config(self) -> str | None:
        """The config file from the ConfigMap; waits (as a kubelet would) until it exists."""
        wait = 1.0
        while not self.stopping.is_set():
            try:
                resp: Any = self._core.read_namespaced_config_map(
                    self.plan.config_map, self.plan.namespace, _preload_content=False
                )
                data = json.loads(resp.data).get("data") or {}
                if self.plan.config_key in data:
                    return str(data[self.plan.config_key])
                why = f"has no key {self.plan.config_key!r}"
            except ApiException as exc:
                why = f"cannot be read (HTTP {exc.status})"
            log.warning(
                "%s/%s: ConfigMap %s %s; retrying",
                self.plan.namespace,
                self.plan.name,
                self.plan.config_map,
                why,
            )
            self.stopping.wait(wait)
            wait = min(wait * 2, MAX_BACKOFF_S)
        return None

    def _supervise(self, argv: list[str]) -> None:
        p, probe = self.plan, self.plan.probe
        backoff = 1.0
        while not self.stopping.is_set():
            self._process = self.ctx.table.start(p.component, argv, env=self.ctx.env)
            started = time.monotonic()
            log.info("%s/%s: runtime pid %s on %s", p.namespace, p.name, self._process.pid, self.endpoint)
            reported = self._report(ready=False, running=True)
            ready, streak = False, 0
            next_probe = started + probe.initial_delay_s
            while not self.stopping.is_set() and self._process.alive():
                now = time.monotonic()
                if now >= next_probe:
                    ok = self._probe(probe)
                    streak = streak + 1 if ok != ready else 0
                    if streak >= (probe.success_threshold if ok else probe.failure_threshold):
                        ready, streak, reported = ok, 0, False
                        log.info("%s/%s: %s", p.namespace, p.name, "ready" if ready else "not ready")
                    if not reported:  # a change, or a patch that failed last time
                        reported = self._report(ready=ready, running=True)
                    next_probe = max(next_probe + probe.period_s, now)
                self.stopping.wait(max(0.0, min(0.2, next_probe - time.monotonic())))
            if self.stopping.is_set():
                return
            code = self._process.exit_status()
            code = 128 - code if code is not None and code < 0 else code  # killed by a signal: 128+N
            log.warning(
                "%s/%s: runtime exited (status %s); restarting in %.0fs", p.namespace, p.name, code, backoff
            )
            self._report(ready=False, running=False, exit_code=code)
            self.stopping.wait(backoff)
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, MAX_BACKOFF_S)
            self.restart_count += 1

    def _probe(self, probe: Probe) -> bool:
        """One readiness probe against the local process (kubelet: HTTP 200-399 or a TCP connect)."""
        if probe.kind == "none":
            return True
        port = probe.port if isinstance(probe.port, int) else self.plan.ports.get(probe.port, -1)
        local = self._mapping.get(int(port))
        if local is None:
            return False
        try:
            if probe.kind == "tcp":
                with socket.create_connection(("127.0.0.1", local), timeout=probe.timeout_s):
                    return True
            conn = http.client.HTTPConnection("127.0.0.1", local, timeout=probe.timeout_s)
            try:
                conn.request("GET", probe.path, headers=dict(probe.headers))
                return 200 <= conn.getresponse().status < 400
            finally:
                conn.close()
        except OSError:
            return False

    # ------------------------------------------------------------------ API

    def _patch(self, body: dict[str, Any], content_type: str, *, status: bool = False) -> None:
        fn = self._core.patch_namespaced_pod_status if status else self._core.patch_namespaced_pod
        try:
            fn(self.plan.name, self.plan.namespace, body, _content_type=content_type, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                self.stopping.set()  # the pod is gone; the host sees its deletion too
                return
            raise

    def _leave(self) -> None:
        """Best effort: the pod is not ready and has no stand-in endpoint any more."""
        try:
            self._report(ready=False, running=False, waiting="StandInHostStopped")
            self._patch({"metadata": {"annotations": {ANNOTATION_STAND_IN_ENDPOINT: None}}}, _MERGE)
        except Exception as exc:
            log.warning(
                "%s/%s: could not mark the pod unhosted: %s", self.plan.namespace, self.plan.name, exc
            )

    def _report(
        self, *, ready: bool, running: bool, exit_code: int | None = None, waiting: str = "CrashLoopBackOff"
    ) -> bool:
        """Patch Ready/ContainersReady (when they change) and the container's status.

        Returns False when the apiserver refused or could not be reached (the caller retries).
        """
        try:
            resp: Any = self._core.read_namespaced_pod(
                self.plan.name, self.plan.namespace, _preload_content=False
            )
            pod = json.loads(resp.data)
            if (pod.get("metadata") or {}).get("uid") != self.plan.uid:
                self.stopping.set()  # the pod was replaced by another of the same name
                return True
            patch = status_patch(
                pod,
                self.plan.container,
                ready=ready,
                running=running,
                restart_count=self.restart_count,
                exit_code=exit_code,
                waiting=waiting,
            )
            if patch:
                self._patch(patch, _STRATEGIC, status=True)
        except ApiException as exc:
            if exc.status == 404:
                self.stopping.set()
                return True
            log.warning(
                "%s/%s: status patch failed (HTTP %s)", self.plan.namespace, self.plan.name, exc.status
            )
            return False
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            log.warning("%s/%s: status patch failed (%s)", self.plan.namespace, self.plan.name, exc)
            return False
        return True
