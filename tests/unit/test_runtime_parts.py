"""The small runtime parts of issue #10: the compiled-policy cache, the reconcile loop, settings,
the metrics object (series removed with their policy, /metrics through prometheus_client)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from prometheus_client import generate_latest
from pydantic import ValidationError

from readiness_operator.kube.loop import run_until_stopped
from readiness_operator.kube.metrics import OperatorMetrics
from readiness_operator.policies import PolicyCache
from readiness_operator.settings import Settings

SPEC = {"rules": {"probes": {"liveness": True}}}


def test_policy_cache_compiles_each_generation_once_and_evicts() -> None:
    cache = PolicyCache()
    first = cache.get("p", 1, SPEC)
    assert first.plan is not None and cache.get("p", 1, SPEC) is first
    second = cache.get("p", 2, {"rules": {"probes": {"readiness": True, "liveness": False}}})
    assert second is not first and second.plan is not None and len(cache) == 1  # the old generation is gone
    assert second.plan.check_ids == ["probe-readiness"]
    cache.get("q", 1, SPEC)
    cache.retain(["q"])
    assert len(cache) == 1 and cache.get("q", 1, SPEC).plan is not None


def test_policy_cache_keeps_the_reason_of_an_invalid_spec() -> None:
    entry = PolicyCache().get("p", 1, {"rules": {"replicas": {"min": "three"}}})
    assert entry.plan is None and entry.invalid is not None and "spec.rules.replicas.min" in entry.invalid


class Stopped:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float | None = None) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        return self.event.is_set()


def test_loop_requeues_retries_with_backoff_and_stops() -> None:
    calls: list[str] = []
    errors: list[float] = []

    async def main() -> None:
        stopped, wake = Stopped(), asyncio.Event()

        async def reconcile() -> float:
            calls.append("pass")
            if len(calls) == 1:
                raise RuntimeError("API down")
            if len(calls) == 3:
                stopped.event.set()
            return 0.01  # requeue almost at once

        await asyncio.wait_for(run_until_stopped(reconcile, wake=wake, stopped=stopped,
                                                 on_error=lambda exc, retry: errors.append(retry), debounce=0), 10)

    asyncio.run(main())
    assert calls == ["pass"] * 3 and errors == [1.0]


def test_loop_wakes_early_on_a_dirty_mark() -> None:
    async def main() -> int:
        stopped, wake = Stopped(), asyncio.Event()
        passes = 0

        async def reconcile() -> float:
            nonlocal passes
            passes += 1
            if passes == 2:
                stopped.event.set()
            return 3600.0  # would sleep an hour without the wake-up

        task = asyncio.create_task(run_until_stopped(reconcile, wake=wake, stopped=stopped,
                                                     on_error=lambda exc, retry: None, debounce=0))
        await asyncio.sleep(0.05)
        wake.set()
        await asyncio.wait_for(task, 5)
        return passes

    assert asyncio.run(main()) == 2


def test_deleted_policy_series_disappear() -> None:
    metrics = OperatorMetrics()
    metrics.set_targets("gone", 3, 1)
    metrics.prometheus_queries.labels(policy="gone", slo="latency").inc()
    metrics.set_targets("kept", 1, 0)
    text = generate_latest(metrics.registry).decode()
    assert 'readiness_policy_targets{policy="gone",verdict="compliant"} 3.0' in text
    metrics.forget_policy("gone", ("latency",))
    text = generate_latest(metrics.registry).decode()
    assert 'policy="gone"' not in text and 'policy="kept"' in text
    assert "readiness_build_info{version=" in text and "process_resident_memory_bytes" in text


def test_two_metrics_objects_do_not_collide() -> None:
    a, b = OperatorMetrics(), OperatorMetrics()  # the global registry would raise "Duplicated timeseries"
    a.evaluations.inc()
    assert "readiness_evaluations_total 1.0" in generate_latest(a.registry).decode()
    assert "readiness_evaluations_total 0.0" in generate_latest(b.registry).decode()


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("READINESS_WEBHOOK_EXCLUDE_NAMESPACES", "a, b,,")
    monkeypatch.setenv("READINESS_WEBHOOK_FAILURE_POLICY", "Fail")
    monkeypatch.setenv("READINESS_WEBHOOK_URL", "")  # empty counts as unset
    monkeypatch.setenv("READINESS_WEBHOOK_PORT", "0")
    s = Settings.from_env()
    assert s.exclude_namespaces == ("a", "b") and s.failure_policy == "Fail" and s.webhook_url is None
    assert s.webhook_port is None and Settings.from_env(webhook_port=9443).webhook_port == 9443
    assert s.excluded_namespaces == ("kube-system", "readiness-system", "a", "b")


@pytest.mark.parametrize(("variable", "value"), [
    ("READINESS_WEBHOOK_TIMEOUT_SECONDS", "99"),
    ("READINESS_WEBHOOK_FAILURE_POLICY", "Sometimes"),
    ("READINESS_WEBHOOK_TLS", "none"),
])
def test_invalid_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable):
        Settings.from_env()
