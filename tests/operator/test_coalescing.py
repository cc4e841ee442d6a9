import threading
from typing import Any

from outrider_operator.reconciler import Reconciler, ReconcileResult


class _Blocking(Reconciler):
    def __init__(self) -> None:
        super().__init__(rest=None)  # type: ignore[arg-type]
        self.calls = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def reconcile(self, namespace: str, name: str) -> ReconcileResult:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(5)
        return ReconcileResult()


def test_requests_during_a_pass_fold_into_one_more_pass() -> None:
    rec = _Blocking()
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(rec.reconcile_coalesced("ns", "a")))
    first.start()
    assert rec.entered.wait(5)
    assert rec.reconcile_coalesced("ns", "a") is None
    assert rec.reconcile_coalesced("ns", "a") is None
    rec.release.set()
    first.join(5)
    assert rec.calls == 2  # the running pass plus exactly one follow-up for the burst
    assert isinstance(results[0], ReconcileResult)
    assert rec.reconcile_coalesced("ns", "a") is not None  # idle again: runs directly
    assert rec.calls == 3


def test_locks_and_event_dedupe_entries_do_not_grow_with_churn() -> None:
    from outrider_operator.kube.events import EventRecorder

    class _Gone(Reconciler):
        def _reconcile(self, namespace: str, name: str) -> ReconcileResult:
            return ReconcileResult(found=False)

    rec = _Gone(rest=None)  # type: ignore[arg-type]
    for i in range(50):
        rec.reconcile("ns", f"deleted-{i}")
    assert rec._locks == {}

    class _Rest:
        def request(self, *args: Any, **kwargs: Any) -> None:
            return None

    events = EventRecorder(_Rest(), dedupe_seconds=0.0)  # type: ignore[arg-type]
    owner = {"metadata": {"namespace": "ns", "name": "a", "uid": "u"}}
    for i in range(1000):
        assert events.record(owner, "Normal", "ChildrenApplied", f"message {i}")
    assert len(events._recent) <= 256
