"""CacheWatcher against a small fake apiserver over real HTTP: list, watch events, 410 relist."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from outrider_scheduler.extender.cache import CacheWatcher, ClusterCache
from outrider_scheduler.extender.simulation import make_node, make_pod


class FakeApi:
    """Serves /api/v1/nodes and /api/v1/pods: a list, then queued watch events per resource."""

    def __init__(self) -> None:
        self.items: dict[str, list[dict[str, Any]]] = {"nodes": [], "pods": []}
        self.events: dict[str, list[dict[str, Any] | int]] = {"nodes": [], "pods": []}
        self.lists = {"nodes": 0, "pods": 0}
        self.lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    api: FakeApi
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlparse(self.path)
        resource = url.path.rsplit("/", 1)[-1]
        query = parse_qs(url.query)
        if resource not in ("nodes", "pods"):
            self.send_error(404)
            return
        if query.get("watch") != ["true"]:
            with self.api.lock:
                self.api.lists[resource] += 1
                body = json.dumps(
                    {"kind": "List", "metadata": {"resourceVersion": "1"}, "items": self.api.items[resource]}
                )
            self._send(200, body.encode())
            return
        deadline = time.monotonic() + 0.5
        lines: list[bytes] = []
        while time.monotonic() < deadline and not lines:
            with self.api.lock:
                queued, self.api.events[resource] = self.api.events[resource], []
            for event in queued:
                if isinstance(event, int):  # an expired resourceVersion
                    status = {"kind": "Status", "code": event, "reason": "Expired", "message": "too old"}
                    lines.append(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                else:
                    lines.append(json.dumps(event).encode() + b"\n")
            time.sleep(0.02)
        self._send(200, b"".join(lines))

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    handler = type("H", (Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield api, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def wait_for(what: str, probe: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_list_watch_and_relist(fake: tuple[FakeApi, str]) -> None:
    from kubernetes import client

    api, url = fake
    api.items["nodes"] = [make_node("a", "l4-x4"), make_node("b", "h100-sxm5-80gb-x8")]
    cfg = client.Configuration()
    cfg.host = url
    cache = ClusterCache()
    watcher = CacheWatcher(cache, client.ApiClient(cfg), watch_deployments=False)
    watcher.start()
    try:
        assert watcher.wait_synced(15)
        assert sorted(cache.node_names()) == ["a", "b"]
        with api.lock:
            api.events["nodes"] = [
                {"type": "ADDED", "object": make_node("c", "t4-x1")},
                {"type": "DELETED", "object": make_node("a", "l4-x4")},
            ]
            api.events["pods"] = [{"type": "ADDED", "object": make_pod("p", 3, node_name="b")}]
        wait_for("watch events", lambda: sorted(cache.node_names()) == ["b", "c"])

        def free_on_b() -> int:
            node = cache.node("b")
            return node.shape.free_gpus if node is not None else -1

        wait_for("the pod to count", lambda: free_on_b() == 5)
        # The watch expires; the relist no longer holds "b": it must disappear from the cache.
        with api.lock:
            api.items["nodes"] = [make_node("c", "t4-x1")]
            api.events["nodes"] = [410]
        wait_for("the relist", lambda: cache.node_names() == ["c"])
        assert api.lists["nodes"] >= 2
    finally:
        watcher.stop()
