from typing import Any

from outrider_operator.reconciler import Reconciler, ReconcileResult


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
