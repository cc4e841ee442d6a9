"""The operator against injected Kubernetes API faults, served by kmock's Kubernetes emulator.

kmock (https://github.com/nolar/kmock) runs a real HTTP server in the test's event loop; the
operator talks to it through its real stack (``kubernetes.client.ApiClient`` -> ``KubeRest`` ->
``Reconciler``), so these tests cover the wire format, the error translation and the ordering
of writes, not just the pure functions.

What kmock's ``KubernetesEmulator`` does and does not emulate (v0.8), and what this file adds:

* It stores objects in memory and serves GET/LIST/WATCH/POST/DELETE, merges dicts on PATCH
  (JSON merge patch semantics, JSON patch when the body is a list) and answers Status objects
  on errors. It does not implement server-side apply: a PATCH to a missing object is a 404
  there, and an apply is just a dict merge. :class:`ApplyingEmulator` below adds a minimal
  apply: ``application/apply-patch+yaml`` creates the object when missing, merges it otherwise.
  Field ownership, list merge keys and conflicts between managers are NOT emulated.
* It assigns no ``resourceVersion``/``uid``/``creationTimestamp``; the operator detects a
  changed child by a changed ``resourceVersion``, so :class:`ApplyingEmulator` bumps one on
  every apply that changes the stored object (and only then, like the apiserver).
* It changes its stored state before consulting the test's reactions, so a reaction answering
  500 to a PATCH would still have applied the patch. :class:`ApplyingEmulator` serves requests
  that a test's own (non-fallback) reaction matches without touching the state, the way an
  apiserver that rejects a request stores nothing.
* No admission, no schema validation (which lets a test store a spec the CRD schema would
  reject), no garbage collection of owned objects, no optimistic concurrency: the 409 below is
  injected, not produced by a stale resourceVersion.
* Quirks of v0.8 met here: ``GET /api/v1/namespaces`` crashes its path parser (so the kopf test
  runs cluster-wide, which does not list namespaces), and ``kmock.objects`` ``in`` checks need
  parsed ``kmock.resource`` keys while item access also takes strings.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import kopf
import pytest
from kmock._internal.dicts import patch_dict  # the emulator's own merge, reused for applies
from kubernetes import client as k8s

from outrider_operator.api import labels
from outrider_operator.config import OperatorConfig
from outrider_operator.errors import KubeApiError
from outrider_operator.kube.rest import FIELD_MANAGER, KubeRest
from outrider_operator.main import build_operator
from outrider_operator.reconciler import Reconciler, ReconcileResult

NS = "serving"
NAME = "minilm"
UID = "6b1f3c2e-0000-4000-8000-000000000001"
IDF = f"{labels.API_GROUP}/{labels.API_VERSION}/{labels.PLURAL}"
APPLY = "application/apply-patch+yaml"

pytestmark = pytest.mark.timeout(30)

# What render_children makes for a minimal spec: (resource, name).
CHILDREN = [
    ("v1/configmaps", f"{NAME}-runtime"),
    ("v1/services", NAME),
    ("policy/v1/poddisruptionbudgets", NAME),
    ("apps/v1/deployments", NAME),
    ("apps/v1/deployments", f"{NAME}-warm"),
    ("apps/v1/deployments", f"{NAME}-cold"),
]


@attrs.define(kw_only=True)
class ApplyingEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with a minimal server-side apply and side-effect-free injected faults."""

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1000), init=False)

    def next_version(self) -> str:
        return str(next(self._versions))

    def _fault_matches(self, request: kmock.Request) -> bool:
        """Whether one of the test's own reactions (not kmock's fallbacks) will answer this request.

        Mirrors the matching loop of ``kmock.RawHandler._handle`` (private attributes of v0.8).
        """
        for reaction in self._payloads:
            if any(math.isinf(p) and p < 0 for p in reaction.priorities):
                continue  # kmock's built-in fallbacks: the emulator itself
            if request in reaction._source and not reaction._disabled.is_set():
                return True
        return False

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None and self._fault_matches(request):
            # Skip the emulator's state changes: a rejected request stores nothing.
            return await kmock.RawHandler._handle(self, request)
        is_apply = str(request.headers.get("Content-Type", "")).startswith(APPLY)
        if request.action == kmock.action.UPDATE and is_apply and request.subresource is None:
            return await self._serve_apply(request)
        return await super()._handle(request)

    async def _serve_apply(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None and request.name is not None
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self._objects or self._objects[key].deleted:
                body = copy.deepcopy(request.data)
                body.setdefault("metadata", {}).update(
                    uid=f"uid-{request.name}", resourceVersion=self.next_version(), generation=1
                )
                self._objects[key] = body
                event, status = "ADDED", 201
            else:
                stored = self._objects[key]
                merged = patch_dict(copy.deepcopy(stored.raw), request.data)
                if merged == stored.raw:
                    event, status = "", 200  # a no-op apply keeps the resourceVersion
                else:
                    merged["metadata"]["resourceVersion"] = self.next_version()
                    stored.patch(merged)
                    event, status = "MODIFIED", 200
            raw = self._objects[key].raw
            if event:
                await self._buses[request.resource].put({"type": event, "object": raw})
        return aiohttp.web.json_response(raw, status=status)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    """A Kubernetes Status object as the apiserver sends with an error."""
    return {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
    }


def _idf(spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{labels.API_GROUP}/{labels.API_VERSION}",
        "kind": labels.KIND,
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": UID,
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": spec,
    }


@pytest.fixture
async def apiserver() -> AsyncIterator[ApplyingEmulator]:
    async with ApplyingEmulator() as emulator, kmock.Server(emulator):
        emulator.objects["v1/nodes", None, "gpu-node-1"] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "gpu-node-1", "labels": {labels.LABEL_GPU_PRODUCT: "H100"}},
            "status": {"allocatable": {labels.GPU_RESOURCE: "8", "cpu": "64"}},
        }
        yield emulator


@pytest.fixture
def reconciler(apiserver: ApplyingEmulator) -> Iterator[Reconciler]:
    configuration = k8s.Configuration(host=str(apiserver.url).rstrip("/"))
    api = k8s.ApiClient(configuration)
    try:
        yield Reconciler(KubeRest(api, timeout=5.0))
    finally:
        api.close()  # type: ignore[no-untyped-call]


async def _reconcile(reconciler: Reconciler) -> ReconcileResult:
    """One pass in a worker thread: KubeRest blocks, and the mock server lives in this loop."""
    return await asyncio.to_thread(reconciler.reconcile, NS, NAME)


def _applies(apiserver: ApplyingEmulator) -> list[kmock.Request]:
    """Applies of child objects (status is applied too, to its own subresource)."""
    return [
        r for r in apiserver["patch", kmock.headers({"Content-Type": APPLY})] if r.subresource != "status"
    ]


def _status_patches(apiserver: ApplyingEmulator) -> list[kmock.Request]:
    return list(apiserver["patch", kmock.subresource("status")])


def _stored_status(apiserver: ApplyingEmulator) -> dict[str, Any] | None:
    status: dict[str, Any] | None = apiserver.objects[IDF, NS, NAME].raw.get("status")
    return status


def _condition(status: dict[str, Any], ctype: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == ctype)
    return found


def _stored_children(apiserver: ApplyingEmulator) -> list[tuple[str, str]]:
    # NB: ObjectsArray.__contains__ does not parse string resources (getitem does).
    return [
        (res, name)
        for res, name in CHILDREN
        if (kmock.resource(res), NS, name) in apiserver.objects
        and not apiserver.objects[res, NS, name].deleted
    ]


async def test_reconcile_applies_children_and_writes_status(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec, generation=3)

    result = await _reconcile(reconciler)

    # Every child went out as a forced server-side apply by the operator's field manager.
    applies = _applies(apiserver)
    assert [(str(r.resource), r.name) for r in applies] == [
        (str(kmock.resource(res)), name) for res, name in CHILDREN
    ]
    for req in applies:
        assert req.params == {"fieldManager": FIELD_MANAGER, "force": "true"}
        assert req.namespace == NS
        owners = req.data["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owners] == [
            (labels.KIND, NAME, UID, True)
        ]
    assert _stored_children(apiserver) == CHILDREN
    assert sorted(result.changed_children) == sorted(
        f"{apiserver.objects[res, NS, name]['kind']}/{name}" for res, name in CHILDREN
    )

    # The status went to the status subresource, for the generation it saw.
    assert len(_status_patches(apiserver)) == 1
    status = _stored_status(apiserver)
    assert status is not None and status["observedGeneration"] == 3
    assert _condition(status, "Ready")["status"] == "False"  # no pods: the mock runs no kubelet
    assert result.status_written and not result.problems
    assert len(apiserver["post", kmock.resource("v1/events")]) == 1  # ChildrenApplied

    # A second pass over an unchanged world is a no-op: applies answer the same resourceVersion,
    # the status is unchanged, so nothing is reported and the status is not written again.
    again = await _reconcile(reconciler)
    assert again.changed_children == [] and not again.status_written
    assert len(_status_patches(apiserver)) == 1


async def test_with_a_cache_a_pass_over_an_unchanged_world_sends_no_request(
    apiserver: ApplyingEmulator, minimal_spec: dict[str, Any]
) -> None:
    """The watch-fed cache: once the children are known as applied, a pass reads nothing and
    applies nothing; a drifted child (as its watch event shows it) is applied again, alone."""
    from outrider_operator.kube.cache import ObjectCache

    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec, generation=2)
    api = k8s.ApiClient(k8s.Configuration(host=str(apiserver.url).rstrip("/")))
    cache = ObjectCache()
    reconciler = Reconciler(KubeRest(api, timeout=5.0), cache=cache)
    try:
        first = await _reconcile(reconciler)
        assert sorted(first.changed_children) == sorted(
            f"{apiserver.objects[res, NS, name]['kind']}/{name}" for res, name in CHILDREN
        )
        # the watches deliver the parent (with the status just written) and the children
        cache.upsert(apiserver.objects[IDF, NS, NAME].raw)
        for res, name in CHILDREN:
            cache.upsert(apiserver.objects[res, NS, name].raw)
        before = len(list(apiserver))
        again = await _reconcile(reconciler)
        assert again.changed_children == [] and not again.status_written
        sent = list(apiserver)[before:]
        assert len(list(apiserver)) >= 7, "the request log holds the first pass"
        assert [(r.method, str(r.resource), r.name) for r in sent if str(r.resource) != "v1/nodes"] == []

        # someone scales the active Deployment: its event reaches the cache, one apply repairs it
        drifted = copy.deepcopy(apiserver.objects["apps/v1/deployments", NS, NAME].raw)
        drifted["spec"]["replicas"] = 5
        drifted["metadata"]["resourceVersion"] = "999999"
        cache.upsert(drifted)
        before = len(list(apiserver))
        repaired = await _reconcile(reconciler)
        applied = [r.name for r in _applies(apiserver)[-1:]]
        assert applied == [NAME]
        assert len([r for r in list(apiserver)[before:] if r.method == "PATCH"]) == 1
        assert repaired.changed_children in ([], [f"Deployment/{NAME}"])  # the mock keeps rv on a no-op merge
    finally:
        api.close()  # type: ignore[no-untyped-call]


async def test_server_error_on_one_child_fails_the_pass_without_status_then_recovers(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec)
    fault = apiserver["patch", kmock.resource("apps/v1/deployments"), kmock.name(f"{NAME}-warm")][:1]
    fault << 500 << _status(500, "InternalError", "etcdserver: request timed out")

    with pytest.raises(KubeApiError) as caught:
        await _reconcile(reconciler)

    assert caught.value.status == 500 and caught.value.retryable
    assert "etcdserver: request timed out" in str(caught.value)
    assert len(fault) == 1
    assert ("apps/v1/deployments", f"{NAME}-warm") not in _stored_children(apiserver)
    assert _status_patches(apiserver) == [] and _stored_status(apiserver) is None

    # The fault was one-shot; the next pass converges and only then reports status.
    result = await _reconcile(reconciler)
    assert len(fault) == 1
    assert _stored_children(apiserver) == CHILDREN
    assert f"Deployment/{NAME}-warm" in result.changed_children
    assert result.status_written
    status = _stored_status(apiserver)
    assert status is not None and status["observedGeneration"] == 1


async def test_child_the_apiserver_refuses_becomes_apply_failed_status_not_a_retry_loop(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec, generation=2)
    fault = apiserver["patch", kmock.resource("v1/services"), kmock.name(NAME)][:1]
    fault << 422 << _status(422, "Invalid", 'Service "minilm" is invalid: metadata.name: Invalid value')

    result = await _reconcile(reconciler)  # no exception: retrying the same spec cannot help

    assert len(fault) == 1
    assert [p.field for p in result.problems] == [f"Service {NAME}"]
    status = _stored_status(apiserver)
    assert status is not None and status["observedGeneration"] == 2
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert "metadata.name: Invalid value" in ready["message"]
    events = [r.data for r in apiserver["post", kmock.resource("v1/events")]]
    assert any(e["reason"] == "ApplyFailed" and e["type"] == "Warning" for e in events)


async def test_a_refused_service_leaves_no_workload_behind(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    """Workloads are applied last: when the Service is refused, no Deployment (no pod) exists."""
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec)
    fault = apiserver["patch", kmock.resource("v1/services"), kmock.name(NAME)][:1]
    fault << 422 << _status(422, "Invalid", 'Service "minilm" is invalid: metadata.name: Invalid value')

    await _reconcile(reconciler)

    assert _stored_children(apiserver) == [("v1/configmaps", f"{NAME}-runtime")]


async def test_the_same_server_error_twice_is_reported_as_apply_failed_and_still_retried(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    """An apiserver answers 500 to a rendered child its typed decoding rejects (a toleration with
    a field of the wrong type did): the second 500 in a row for the same child and generation
    reaches the object as ApplyFailed with an Event, and the pass still fails so it is retried."""
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec, generation=4)
    fault = apiserver["patch", kmock.resource("apps/v1/deployments"), kmock.name(NAME)][:2]
    refusal = "failed to create typed patch object: .spec.template.spec.tolerations: expected string"
    fault << 500 << _status(500, "InternalError", refusal)

    with pytest.raises(KubeApiError):
        await _reconcile(reconciler)
    assert _stored_status(apiserver) is None  # one 500 may be a hiccup: nothing reported yet

    with pytest.raises(KubeApiError) as caught:
        await _reconcile(reconciler)
    assert caught.value.retryable
    status = _stored_status(apiserver)
    assert status is not None and status["observedGeneration"] == 4
    ready = _condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert "failed to create typed patch object" in ready["message"]
    events = [r.data for r in apiserver["post", kmock.resource("v1/events")]]
    assert any(e["reason"] == "ApplyFailed" and e["type"] == "Warning" for e in events)

    # the fault clears: the next pass converges and Ready leaves ApplyFailed
    await _reconcile(reconciler)
    assert _condition(_stored_status(apiserver) or {}, "Ready")["reason"] != "ApplyFailed"


async def test_conflict_on_status_is_retryable_and_a_later_pass_writes_it(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec)
    message = (
        'Operation cannot be fulfilled on inferencedeployments.outrider.dev "minilm": the object '
        "has been modified; please apply your changes to the latest version and try again"
    )
    conflict = apiserver["patch", kmock.resource(IDF), kmock.subresource("status")][:1]
    conflict << 409 << _status(409, "Conflict", message)

    with pytest.raises(KubeApiError) as caught:
        await _reconcile(reconciler)

    assert caught.value.status == 409 and caught.value.retryable
    assert "the object has been modified" in str(caught.value)
    assert len(conflict) == 1 and _stored_status(apiserver) is None
    assert _stored_children(apiserver) == CHILDREN  # the applies before it did go through

    result = await _reconcile(reconciler)
    assert result.status_written and result.changed_children == []
    assert len(_status_patches(apiserver)) == 2
    status = _stored_status(apiserver)
    assert status is not None and status["observedGeneration"] == 1


async def test_forbidden_node_listing_is_a_clear_non_retryable_error(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    apiserver.objects[IDF, NS, NAME] = _idf(minimal_spec)
    message = (
        'nodes is forbidden: User "system:serviceaccount:outrider-system:outrider-operator" '
        'cannot list resource "nodes" in API group "" at the cluster scope'
    )
    forbidden = apiserver["list", kmock.resource("v1/nodes")] << 403 << _status(403, "Forbidden", message)

    with pytest.raises(KubeApiError) as caught:
        await _reconcile(reconciler)

    assert caught.value.status == 403 and not caught.value.retryable
    assert caught.value.reason == "Forbidden"
    assert message in caught.value.message and message in str(caught.value)
    assert len(forbidden) == 1
    assert _applies(apiserver) == [] and _status_patches(apiserver) == []


async def test_invalid_spec_reports_the_field_and_leaves_children_alone(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    # The CRD schema's CEL rule would reject this; kmock has no admission, as an older CRD won't.
    spec = {**minimal_spec, "replicas": {"min": 5, "max": 2}}
    apiserver.objects[IDF, NS, NAME] = _idf(spec, generation=7)

    result = await _reconcile(reconciler)

    assert [p.field for p in result.problems] == ["spec.replicas"]
    assert _applies(apiserver) == []
    assert _stored_children(apiserver) == []
    patches = _status_patches(apiserver)
    assert len(patches) == 1
    ready = _condition(patches[0].data["status"], "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.replicas" in ready["message"]
    assert patches[0].data["status"]["observedGeneration"] == 7
    warnings = list(apiserver["post", kmock.resource("v1/events")])
    assert [(w.data["type"], w.data["reason"]) for w in warnings] == [("Warning", "InvalidSpec")]


async def test_rejected_event_does_not_block_the_invalid_spec_status(
    apiserver: ApplyingEmulator, reconciler: Reconciler, minimal_spec: dict[str, Any]
) -> None:
    # Events are informational and best effort (client-go's recorder never fails a sync); a
    # namespace whose events quota is used up must still get Ready=False/InvalidSpec in status.
    spec = {**minimal_spec, "replicas": {"min": 5, "max": 2}}
    apiserver.objects[IDF, NS, NAME] = _idf(spec)
    quota = 'events "minilm.0f3a" is forbidden: exceeded quota: events, requested: count/events=1'
    rejected = apiserver["post", kmock.resource("v1/events")] << 403 << _status(403, "Forbidden", quota)

    result = await _reconcile(reconciler)

    assert len(rejected) == 1
    assert [p.field for p in result.problems] == ["spec.replicas"]
    status = _stored_status(apiserver)
    assert status is not None
    assert _condition(status, "Ready")["reason"] == "InvalidSpec"


async def _wait_for(what: str, condition: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting until {what}")
        await asyncio.sleep(0.02)


async def _wait_until_quiet(apiserver: ApplyingEmulator, quiet: float = 0.3, timeout: float = 3.0) -> None:
    """Let in-flight handler threads finish (they cannot be cancelled) before stopping kopf."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = len(list(apiserver))
    while loop.time() < deadline:
        await asyncio.sleep(quiet)
        now = len(list(apiserver))
        if now == seen:
            return
        seen = now


async def test_kopf_operator_survives_410_gone_on_the_watch_and_reconciles_afterwards(
    apiserver: ApplyingEmulator,
    minimal_spec: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kopf discovers what it serves; kmock's discovery lists declared resources with their verbs.
    verbs = {"get", "list", "watch", "create", "patch", "delete"}
    for resource, kind, namespaced in [
        ("v1/namespaces", "Namespace", False),
        ("apiextensions.k8s.io/v1/customresourcedefinitions", "CustomResourceDefinition", False),
        (IDF, labels.KIND, True),
        ("apps/v1/deployments", "Deployment", True),
        ("v1/configmaps", "ConfigMap", True),
        ("v1/services", "Service", True),
        ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget", True),
        ("v1/events", "Event", True),
    ]:
        apiserver.resources[resource] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=verbs)
    # The first watch of InferenceDeployments ends at once with the apiserver's in-stream 410.
    expired = _status(410, "Expired", "too old resource version: 1 (4242)")
    gone = apiserver["watch", kmock.resource(IDF)][:1] << ({"type": "ERROR", "object": expired},)

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "kmock",
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}],
                "clusters": [{"name": "kmock", "cluster": {"server": str(apiserver.url).rstrip("/")}}],
                "users": [{"name": "kmock", "user": {"token": "kmock-token"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # read by kopf.login_with_kubeconfig
    config = OperatorConfig(
        kubeconfig=str(kubeconfig),
        resync_seconds=3600,
        metrics_port=0,
        health_port=0,
        retry_delay_seconds=0.1,
    )
    registry = build_operator(config)
    kopf.on.login(registry=registry)(kopf.login_with_kubeconfig)
    # Cluster-wide: a namespaced kopf lists /api/v1/namespaces, whose path kmock 0.8 fails to parse.
    operator = asyncio.create_task(kopf.operator(registry=registry, standalone=True, clusterwide=True))
    try:
        watches = apiserver["watch", kmock.resource(IDF)]
        await _wait_for("kopf watches again after the 410", lambda: len(watches) >= 2)
        assert len(gone) == 1
        assert len(apiserver["list", kmock.resource(IDF)]) >= 2

        # Only a live watch can see this object: it appears after the re-established stream began.
        created = await apiserver.post(
            f"/apis/{labels.API_GROUP}/{labels.API_VERSION}/namespaces/{NS}/{labels.PLURAL}",
            json=_idf(minimal_spec),
        )
        assert created.status in (200, 201)
        await _wait_for("the operator writes status", lambda: _stored_status(apiserver) is not None)
        await _wait_until_quiet(apiserver)
        assert not operator.done(), operator.exception()  # still running, not crashed
    finally:
        operator.cancel()
        await asyncio.gather(operator, return_exceptions=True)

    assert _stored_children(apiserver) == CHILDREN
    status = _stored_status(apiserver)
    assert status is not None and status["observedGeneration"] == 1
    assert _condition(status, "Ready")["status"] == "False"
