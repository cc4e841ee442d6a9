"""Reading a pod on a stand-in node: what runtime it runs, with which config and env, probed how.

Pure functions over the pod as plain JSON (what the apiserver returns), so they are cheap to test:
:func:`plan_for` turns a pod into a :class:`PodPlan` or raises :class:`~.errors.StandInError`
saying why the pod cannot be hosted; :func:`render_config` rewrites the runtime config the pod
would mount so that the process listens on free ports of 127.0.0.1 with one ONNX thread;
:func:`status_patch` is the status update a kubelet would send for the runtime container.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import yaml

from .errors import StandInError

__all__ = ["PodPlan", "Probe", "is_deleting", "plan_for", "pod_key", "render_config", "status_patch"]

_DROPPED_FLAGS = ("--port", "--grpc-port", "--ready-file")
"""Flags of ``outrider runtime serve`` the host sets itself (ports) or has no use for."""
_FIELD_REFS = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "metadata.uid": ("metadata", "uid"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.podIP": ("status", "podIP"),
    "status.hostIP": ("status", "hostIP"),
}


def pod_key(pod: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of a pod."""
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def is_deleting(pod: dict[str, Any]) -> bool:
    """True once the pod has a deletion timestamp or has finished."""
    meta = pod.get("metadata") or {}
    phase = (pod.get("status") or {}).get("phase")
    return bool(meta.get("deletionTimestamp")) or phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class Probe:
    """A readiness probe as the kubelet reads it, with core/v1's defaults."""

    kind: str = "none"
    """``http`` (httpGet), ``tcp`` (tcpSocket) or ``none`` (absent or unsupported: ready while running)."""
    path: str = "/"
    """httpGet path."""
    port: int | str = 0
    """Container port number or name."""
    headers: tuple[tuple[str, str], ...] = ()
    """httpGet httpHeaders."""
    period_s: float = 10.0
    """periodSeconds."""
    timeout_s: float = 1.0
    """timeoutSeconds."""
    initial_delay_s: float = 0.0
    """initialDelaySeconds."""
    failure_threshold: int = 3
    """Consecutive failures that make a ready container unready."""
    success_threshold: int = 1
    """Consecutive successes that make an unready container ready."""

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> Probe:
        """Read a core/v1 Probe (or None)."""
        if not spec:
            return cls()
        common = cls(
            period_s=float(spec.get("periodSeconds") or 10),
            timeout_s=float(spec.get("timeoutSeconds") or 1),
            initial_delay_s=float(spec.get("initialDelaySeconds") or 0),
            failure_threshold=int(spec.get("failureThreshold") or 3),
            success_threshold=int(spec.get("successThreshold") or 1),
        )
        if "httpGet" in spec:
            get = spec["httpGet"] or {}
            headers = tuple((str(h["name"]), str(h["value"])) for h in get.get("httpHeaders") or [])
            path = str(get.get("path") or "/")
            return replace(common, kind="http", path=path, port=get.get("port", 0), headers=headers)
        if "tcpSocket" in spec:
            return replace(common, kind="tcp", port=(spec["tcpSocket"] or {}).get("port", 0))
        return common


@dataclass(frozen=True)
class PodPlan:
    """How to run one pod's runtime container as a local process."""

    namespace: str
    """Pod namespace."""
    name: str
    """Pod name."""
    uid: str
    """Pod UID (a recreated pod of the same name is another pod)."""
    container: str
    """Name of the runtime container."""
    config_map: str
    """ConfigMap holding the runtime config."""
    config_key: str
    """Key of the config file inside the ConfigMap."""
    extra_args: tuple[str, ...]
    """Other arguments of ``outrider runtime serve`` (``--log-level`` ...)."""
    env: dict[str, str] = field(default_factory=dict)
    """The container's env with fieldRefs resolved."""
    unresolved_env: tuple[str, ...] = ()
    """Env variables taken from ConfigMaps, Secrets or resources, which the host does not resolve."""
    probe: Probe = field(default_factory=Probe)
    """The container's readiness probe."""
    ports: dict[str, int] = field(default_factory=dict)
    """Named container ports."""

    @property
    def component(self) -> str:
        """File-name-safe identity: ``<namespace>.<name>.<uid prefix>``."""
        return f"{self.namespace}.{self.name}.{self.uid[:8]}"


def _runtime_args(container: dict[str, Any]) -> list[str] | None:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    for i in range(len(argv) - 1):
        if argv[i] == "runtime" and argv[i + 1] == "serve":
            return argv[i + 2 :]
    return None


def _split_args(args: list[str]) -> tuple[str | None, tuple[str, ...]]:
    config, extra, i = None, [], 0
    while i < len(args):
        arg = args[i]
        flag, eq, value = arg.partition("=")
        if flag == "--config" or flag in _DROPPED_FLAGS:
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if flag == "--config":
                config = value
        else:
            extra.append(arg)
        i += 1
    return config, tuple(extra)


def _config_source(pod: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    mounts = sorted(
        container.get("volumeMounts") or [], key=lambda m: len(m.get("mountPath", "")), reverse=True
    )
    for mount in mounts:
        base = str(mount.get("mountPath", "")).rstrip("/")
        cm = (volumes.get(mount.get("name")) or {}).get("configMap")
        if not cm:
            continue
        if mount.get("subPath") and path == base:
            return str(cm["name"]), str(mount["subPath"])
        if path.startswith(base + "/"):
            rel = path[len(base) + 1 :]
            items = {str(i["path"]): str(i["key"]) for i in cm.get("items") or []}
            return str(cm["name"]), items.get(rel, rel) if items else rel
    raise StandInError(f"--config {path} is not inside a ConfigMap volume mount")


def _env(pod: dict[str, Any], container: dict[str, Any]) -> tuple[dict[str, str], tuple[str, ...]]:
    env: dict[str, str] = {}
    unresolved = []
    for var in container.get("env") or []:
        name = str(var["name"])
        if "value" in var:
            env[name] = str(var["value"] or "")
            continue
        ref = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath", "")
        if ref in _FIELD_REFS:
            section, key = _FIELD_REFS[ref]
            env[name] = str((pod.get(section) or {}).get(key) or "")
        elif ref.startswith(("metadata.labels['", "metadata.annotations['")):
            section, _, rest = ref[len("metadata.") :].partition("['")
            env[name] = str(((pod.get("metadata") or {}).get(section) or {}).get(rest.rstrip("']"), ""))
        else:
            unresolved.append(name)
    return env, tuple(unresolved)


def plan_for(pod: dict[str, Any]) -> PodPlan:
    """The plan of a pod whose container runs ``outrider runtime serve --config FILE``.

    Raises StandInError naming the reason when no container runs the runtime or its config file
    does not come from a ConfigMap volume.
    """
    namespace, name = pod_key(pod)
    containers = (pod.get("spec") or {}).get("containers") or []
    for container in containers:
        args = _runtime_args(container)
        if args is None:
            continue
        config, extra = _split_args(args)
        if not config:
            raise StandInError(f"container {container.get('name')!r} runs the runtime without --config")
        config_map, key = _config_source(pod, container, config)
        env, unresolved = _env(pod, container)
        return PodPlan(
            namespace=namespace,
            name=name,
            uid=str((pod.get("metadata") or {}).get("uid") or ""),
            container=str(container.get("name") or ""),
            config_map=config_map,
            config_key=key,
            extra_args=extra,
            env=env,
            unresolved_env=unresolved,
            probe=Probe.from_spec(container.get("readinessProbe")),
            ports={
                str(p["name"]): int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name")
            },
        )
    raise StandInError("no container runs `outrider runtime serve`")


def render_config(text: str, http_port: int, grpc_port: int) -> tuple[str, dict[int, int]]:
    """Rewrite a runtime config for a local process; return it and container port -> local port.

    ``server.httpPort``/``grpcPort`` become the given local ports, ``server.host`` 127.0.0.1 and
    ``server.intraOpThreads`` 1 (the machine has few cores and several runtimes share them).
    """
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise StandInError(f"the runtime config is not valid YAML: {exc}") from exc
    if not isinstance(config, dict):
        raise StandInError("the runtime config is not a mapping")
    server = config.setdefault("server", {}) or {}
    config["server"] = server
    mapping = {int(server.get("httpPort", 8000)): http_port, int(server.get("grpcPort", 8001)): grpc_port}
    server.update({"httpPort": http_port, "grpcPort": grpc_port, "host": "127.0.0.1", "intraOpThreads": 1})
    return yaml.safe_dump(config, sort_keys=False), mapping


def status_patch(
    pod: dict[str, Any],
    container: str,
    *,
    ready: bool,
    running: bool,
    restart_count: int,
    exit_code: int | None = None,
    waiting: str = "CrashLoopBackOff",
) -> dict[str, Any] | None:
    """The strategic-merge patch of a pod's status a kubelet would send, or None if nothing changes.

    Ready and ContainersReady get a new ``lastTransitionTime`` only when they flip; the container's
    entry gets ``ready``, ``started``, ``restartCount`` and its state (running, or waiting with
    ``lastState.terminated`` after an exit). ``containerStatuses`` is an atomic list in the API, so
    the patch carries all of it.
    """
    status = pod.get("status") or {}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    flag = "True" if ready else "False"
    patch: dict[str, Any] = {}
    current = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if current.get("Ready") != flag or current.get("ContainersReady") != flag:
        why = {"reason": "ContainersNotReady", "message": f"containers with unready status: [{container}]"}
        extra = {"reason": None, "message": None} if ready else why
        patch["conditions"] = [
            {"type": kind, "status": flag, "lastTransitionTime": now, **extra}
            for kind in ("ContainersReady", "Ready")
        ]
    statuses = [dict(c) for c in status.get("containerStatuses") or []]
    for entry in statuses:
        if entry.get("name") != container:
            continue
        was_running = "running" in (entry.get("state") or {})
        before = (entry.get("ready"), entry.get("restartCount"), was_running)
        entry.update({"ready": ready, "started": running, "restartCount": restart_count})
        if running and (not was_running or before[1] != restart_count):
            entry["state"] = {"running": {"startedAt": now}}
        elif not running:
            if exit_code is not None:
                entry["lastState"] = {
                    "terminated": {"exitCode": exit_code, "reason": "Error", "finishedAt": now}
                }
            entry["state"] = {
                "waiting": {"reason": waiting, "message": "no stand-in runtime runs for it now"}
            }
        if before != (ready, restart_count, running) or "conditions" in patch:
            patch["containerStatuses"] = statuses
    return {"status": patch} if patch else None
