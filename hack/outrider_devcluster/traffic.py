"""Real inference traffic to a Service of the local cluster, routed the way kube-proxy routes it.

A ClusterIP is reachable only from the real node's own network (kube-proxy programs its iptables
there), and a KWOK pod IP leads nowhere, so a test or a benchmark on this machine sends to the pods
themselves: :class:`ServiceRouter` does kube-proxy's part for one Service. It watches the Service's
EndpointSlices and spreads requests round-robin over the endpoints that are *ready* — exactly the
set kube-proxy would program — reaching each pod of a real node at its IP on the node's bridge,
port 8000; pods on simulated nodes are never targets. :class:`LoadGenerator` sends
open-loop traffic at a rate that follows a schedule, bounded in time and in requests in flight,
and records every request's outcome.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from outrider_operator.kube.listwatch import ListWatch

__all__ = [
    "LONG_TEXTS",
    "TEXTS",
    "FixedRouter",
    "LoadGenerator",
    "LoadReport",
    "RequestRecord",
    "ServiceRouter",
]

_SERVICE_LABEL = "kubernetes.io/service-name"
TEXTS = [
    "Outrider warms standby pods before the surge arrives.",
    "Predictive autoscaling keeps latency flat when load triples in a second.",
    "A warm pod is promoted by a label and a state change, not a new pod.",
    "Spare accelerators take the replicas the forecast asks for.",
]
"""Short requests (about 12 tokens)."""
_LONG = (
    "outrider warms standby pods before the surge arrives so that requests keep meeting their latency "
    "target while new capacity is placed on spare accelerators by the scheduler extender and the planner "
    "resizes batches live on the serving pods"
)
_WORDS = _LONG.split()
LONG_TEXTS = [" ".join(_WORDS[(i + k) % len(_WORDS)] for k in range(32)).capitalize() + "." for i in range(8)]
"""Requests of about 40 tokens: a runtime on one CPU thread serves about 130 a second within a
200-ms p99, so a surge that needs more pods stays within what a 2-core machine can run."""


_POD_HTTP_PORT = 8000
"""The runtime's HTTP port in a serving pod."""


class ServiceRouter:
    """Ready endpoints of one Service, mapped to where their pods answer on this machine.

    A pod on one of ``real_nodes`` answers at its own IP on the node's bridge (port 8000). Pods
    elsewhere (KWOK) are never targets: their IPs lead nowhere.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        service: str,
        clock: Callable[[], float] = time.monotonic,
        real_nodes: frozenset[str] = frozenset(),
    ):
        from kubernetes import client

        self.namespace = namespace
        self.service = service
        self.clock = clock
        self.real_nodes = real_nodes
        self._lock = threading.Lock()
        self._slices: dict[str, set[str]] = {}
        self._addresses: dict[str, str] = {}
        self._ready_since: dict[str, float] = {}
        self._rr = itertools.count()
        discovery = client.DiscoveryV1Api(api_client)
        core = client.CoreV1Api(api_client)

        def list_slices(**kw: Any) -> Any:
            return discovery.list_namespaced_endpoint_slice(
                namespace, label_selector=f"{_SERVICE_LABEL}={service}", **kw
            )

        def list_pods(**kw: Any) -> Any:
            return core.list_namespaced_pod(namespace, **kw)

        self._watches = [
            ListWatch(f"endpointslices/{service}", list_slices, self._upsert_slice, self._delete_slice),
            ListWatch(f"pods/{namespace}", list_pods, self._upsert_pod, self._delete_pod),
        ]

    def start(self) -> ServiceRouter:
        """Start watching; returns self."""
        for w in self._watches:
            w.start()
        for w in self._watches:
            w.synced.wait(30)
        return self

    def stop(self) -> None:
        """Stop watching."""
        for w in self._watches:
            w.stop()

    def __enter__(self) -> ServiceRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- watch callbacks -------------------------------------------------------------------------
    def _upsert_slice(self, obj: Mapping[str, Any]) -> None:
        name = str((obj.get("metadata") or {}).get("name"))
        ready = {
            str((ep.get("targetRef") or {}).get("name"))
            for ep in obj.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") and (ep.get("targetRef") or {}).get("kind") == "Pod"
        }
        now = self.clock()
        with self._lock:
            self._slices[name] = ready
            for pod in ready:
                self._ready_since.setdefault(pod, now)
            current = set().union(*self._slices.values())
            for pod in [p for p in self._ready_since if p not in current]:
                del self._ready_since[pod]

    def _delete_slice(self, obj: Mapping[str, Any]) -> None:
        with self._lock:
            self._slices.pop(str((obj.get("metadata") or {}).get("name")), None)

    def _upsert_pod(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ip = (obj.get("status") or {}).get("podIP")
        address = None
        if ip and (obj.get("spec") or {}).get("nodeName") in self.real_nodes:
            address = f"{ip}:{_POD_HTTP_PORT}"
        with self._lock:
            if address:
                self._addresses[str(meta.get("name"))] = str(address)
            else:
                self._addresses.pop(str(meta.get("name")), None)

    def _delete_pod(self, obj: Mapping[str, Any]) -> None:
        with self._lock:
            self._addresses.pop(str((obj.get("metadata") or {}).get("name")), None)

    # ---- reading ---------------------------------------------------------------------------------
    def ready_pods(self) -> dict[str, float]:
        """Pods that are ready endpoints now, with the (monotonic) time each was first seen ready."""
        with self._lock:
            return dict(self._ready_since)

    def targets(self) -> list[tuple[str, str]]:
        """(pod, address) of every ready endpoint on a real node, in a stable order."""
        with self._lock:
            pods = sorted(set().union(*self._slices.values())) if self._slices else []
            return [(p, self._addresses[p]) for p in pods if p in self._addresses]

    def pick(self) -> tuple[str, str] | None:
        """The next endpoint, round-robin (None when there is none)."""
        targets = self.targets()
        if not targets:
            return None
        return targets[next(self._rr) % len(targets)]


class FixedRouter:
    """Round-robin over fixed local addresses (pods = names), for runtimes started without a cluster."""

    def __init__(self, targets: dict[str, str], clock: Callable[[], float] = time.monotonic) -> None:
        self._targets = sorted(targets.items())
        self.clock = clock
        self._rr = itertools.count()

    def pick(self) -> tuple[str, str] | None:
        """The next (name, address)."""
        return self._targets[next(self._rr) % len(self._targets)] if self._targets else None


@dataclass(frozen=True)
class RequestRecord:
    """One request: when it was sent (monotonic), how long it took, its HTTP status (0: no answer)."""

    sent: float
    seconds: float
    status: int
    pod: str


@dataclass
class LoadReport:
    """Every request of a run."""

    records: list[RequestRecord] = field(default_factory=list)

    @property
    def sent(self) -> int:
        """Requests sent."""
        return len(self.records)

    @property
    def failed(self) -> list[RequestRecord]:
        """Requests not answered 200 (including those with no endpoint to go to)."""
        return [r for r in self.records if r.status != 200]

    def by_pod(self) -> dict[str, int]:
        """Successful requests per pod."""
        out: dict[str, int] = {}
        for r in self.records:
            if r.status == 200:
                out[r.pod] = out.get(r.pod, 0) + 1
        return out


class LoadGenerator:
    """Open-loop traffic: ``rate(t)`` requests/s for ``seconds``, at most ``max_inflight`` at once."""

    def __init__(
        self,
        router: ServiceRouter | FixedRouter,
        model: str = "minilm",
        max_inflight: int = 256,
        timeout_s: float = 30.0,
        texts: list[str] | None = None,
        on_send: Callable[[float], None] | None = None,
        poisson_seed: int | None = None,
    ):
        self.router = router
        self._gaps = random.Random(poisson_seed) if poisson_seed is not None else None
        """With a seed, gaps between requests are exponential (Poisson arrivals, as many independent
        clients make); without one they are even (``1/rate``)."""
        self.on_send = on_send
        """Called with the send time (the router's clock) of every request, as it is sent."""
        self.model = model
        self.texts = texts or TEXTS
        self.max_inflight = max_inflight
        self.timeout_s = timeout_s
        self.report = LoadReport()
        self.stop = asyncio.Event()

    async def run(self, rate: Callable[[float], float], seconds: float) -> LoadReport:
        """Send until ``seconds`` pass or :attr:`stop` is set; waits for the requests in flight."""
        clock = self.router.clock
        slots = asyncio.Semaphore(self.max_inflight)
        tasks: set[asyncio.Task[None]] = set()
        bodies = [
            json.dumps(
                {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [t]}]}
            ).encode()
            for t in self.texts
        ]
        start = clock()
        due = start
        i = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.max_inflight)) as session:
            while not self.stop.is_set():
                now = clock()
                if now - start >= seconds:
                    break
                r = rate(now - start)
                if r <= 0:
                    await asyncio.sleep(0.05)
                    due = clock()
                    continue
                if now < due:
                    await asyncio.sleep(due - now)
                due += self._gaps.expovariate(r) if self._gaps is not None else 1.0 / r
                await slots.acquire()
                task = asyncio.create_task(self._one(session, bodies[i % len(bodies)], slots))
                i += 1
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        return self.report

    async def _one(self, session: aiohttp.ClientSession, body: bytes, slots: asyncio.Semaphore) -> None:
        clock = self.router.clock
        sent = clock()
        if self.on_send is not None:
            self.on_send(sent)
        target = self.router.pick()
        if target is None:
            self.report.records.append(RequestRecord(sent, 0.0, 0, ""))
            slots.release()
            return
        pod, address = target
        status = 0
        try:
            async with session.post(
                f"http://{address}/v2/models/{self.model}/infer",
                data=body,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError):
            status = 0
        finally:
            slots.release()
        self.report.records.append(RequestRecord(sent, clock() - sent, status, pod))
