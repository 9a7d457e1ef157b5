"""The figures of a service's compute processes (``pipeline.processes`` > 1), apart from their running:
what ``/metrics`` adds about them (:class:`ComputeCollector`), their stage counters pooled
(:func:`merge_counters`) and the providers the service reports for them (:func:`least_capable`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from actwatch.onnx_choices import PROVIDER_ORDER
from actwatch.service.staged import StageCounters, added_up


def least_capable(provider_lists: list[list[str]]) -> list[str]:
    """Of several processes' providers for one network, those whose best is the least preferred: what
    the service reports is what its slowest process runs on (one that fell back to the CPU shows).

    Example:
        >>> least_capable([["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]])
        ['CPUExecutionProvider']
    """

    def rank(providers: list[str]) -> int:
        best = providers[0] if providers else None
        return PROVIDER_ORDER.index(best) if best in PROVIDER_ORDER else len(PROVIDER_ORDER)

    return max(provider_lists, key=rank)


class ComputeCollector(Collector):
    """The compute processes' own figures on ``/metrics``: how many run, how often one was started again,
    and the messages they dropped for a full queue, by kind.

    Example:
        >>> class Two:
        ...     def running(self): return 2
        ...     def restarts(self): return 1
        ...     def dropped(self): return {"tracks": 3}
        ...     def received(self): return {"events": 5}
        >>> [(f.name, [s.value for s in f.samples]) for f in ComputeCollector(Two()).collect()][:2]
        [('actwatch_compute_processes_up', [2]), ('actwatch_compute_process_restarts', [1])]
    """

    def __init__(self, controller: Any) -> None:
        self._controller = controller

    def collect(self) -> Iterator[Metric]:
        c = self._controller
        yield GaugeMetricFamily(
            "actwatch_compute_processes_up",
            "Compute processes running with their stages built (pipeline.processes).",
            value=c.running(),
        )
        yield CounterMetricFamily(
            "actwatch_compute_process_restarts",
            "Times a compute process was started again after it died (each attempt).",
            value=c.restarts(),
        )
        dropped = CounterMetricFamily(
            "actwatch_compute_messages_dropped",
            "Messages compute processes dropped for a full queue to the service (tracks, logs, reports; never events).",
            labels=["kind"],
        )
        for kind, n in sorted(c.dropped().items()):
            dropped.add_metric([kind], n)
        yield dropped
        received = CounterMetricFamily(
            "actwatch_compute_messages_received",
            "Messages the service's process read from compute processes, by kind (events, tracks: only for "
            "cameras a WebSocket client subscribes to, reports, logs, progress, answers, starts).",
            labels=["kind"],
        )
        for kind, n in sorted(c.received().items()):
            received.add_metric([kind], n)
        yield received


def merge_counters(counters: list[StageCounters]) -> StageCounters:
    """One :class:`StageCounters` from several processes' (see :meth:`ShardedController.stage_counters`).

    Example:
        >>> a = StageCounters(10.0, {"detect": 9.0}, {"detect": 0.9}, {"detect": 1}, 2, 0, 0, 0.5)
        >>> b = StageCounters(12.0, {"detect": 6.0}, {"detect": 0.5}, {"detect": 3}, 1, 1, 0, 0.0)
        >>> m = merge_counters([a, b])
        >>> m.wall_s, m.busy_s, m.occupancy, m.drops, m.stale, m.evidence_dropped
        (12.0, {'detect': 15.0}, {'detect': 0.7}, {'detect': 4}, 3, 1)
    """
    occupancy = {k: v / len(counters) for k, v in added_up(c.occupancy for c in counters).items()}
    return StageCounters(
        wall_s=max(c.wall_s for c in counters),
        busy_s=added_up(c.busy_s for c in counters),
        occupancy={k: round(v, 6) for k, v in occupancy.items()},
        drops=added_up(c.drops for c in counters),
        stale=sum(c.stale for c in counters),
        evidence_dropped=sum(c.evidence_dropped for c in counters),
        failures=sum(c.failures for c in counters),
        frame_waited_s=sum(c.frame_waited_s for c in counters),
    )
