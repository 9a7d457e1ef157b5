"""Prometheus metrics of one service instance, in its own registry (never the global default one).

The pipeline calls the ``observe_*``/``set_*``/``count_*`` methods from its thread (prometheus_client
is thread-safe); the API renders :meth:`ServiceMetrics.render` at ``/metrics`` after refreshing the
per-camera reader figures from the controller's statuses (:meth:`ServiceMetrics.update_camera`).

Example:
    >>> m = ServiceMetrics()
    >>> m.observe_stage("detect", 0.012)
    >>> m.count_event("cam1", "fall")
    >>> b'actwatch_events_total{camera="cam1",label="fall"} 1.0' in m.render()
    True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from actwatch.model.provenance import ModelProvenance

if TYPE_CHECKING:
    from actwatch.service.staged import StageCounters

Stage = Literal["detect", "track", "encode", "classify"]
STAGES: tuple[Stage, ...] = ("detect", "track", "encode", "classify")
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_E2E_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(slots=True)
class _CameraTotals:
    frames_read: int = 0
    frames_dropped: int = 0
    reconnects: int = 0


class ServiceMetrics:
    """All metrics of one service; pass it to the pipeline, the sink and the broadcaster.

    Example:
        >>> m = ServiceMetrics()
        >>> m.update_camera("cam1", frames_read=10, frames_dropped=1, reconnects=0, fps=9.5)
        >>> m.update_camera("cam1", frames_read=25, frames_dropped=1, reconnects=0, fps=10.0)
        >>> m.registry.get_sample_value("actwatch_camera_frames_read_total", {"camera": "cam1"})
        25.0
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.frames_read = Counter("actwatch_camera_frames_read", "Frames decoded per camera.", ["camera"], registry=r)
        self.frames_processed = Counter(
            "actwatch_camera_frames_processed",
            "Frames run through detection and tracking.",
            ["camera"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "actwatch_camera_frames_dropped",
            "Frames skipped because a newer one arrived first.",
            ["camera"],
            registry=r,
        )
        self.fps = Gauge(
            "actwatch_camera_fps",
            "Frames per second per camera and stage (read, processed).",
            ["camera", "stage"],
            registry=r,
        )
        self.reconnects = Counter("actwatch_camera_reconnects", "Camera reconnections.", ["camera"], registry=r)
        self.stage_latency = Histogram(
            "actwatch_stage_latency_seconds",
            "Latency of one pipeline stage for one batch.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.frame_to_event = Histogram(
            "actwatch_frame_to_event_seconds",
            "From the capture of the confirming frame to the event being stored and published.",
            buckets=_E2E_BUCKETS,
            registry=r,
        )
        self.active_tracks = Gauge("actwatch_active_tracks", "Tracks currently buffered.", ["camera"], registry=r)
        self.events = Counter("actwatch_events", "Alerts emitted.", ["camera", "label"], registry=r)
        self.store_failures = Counter(
            "actwatch_event_store_failures", "Events that could not be stored (still broadcast).", registry=r
        )
        self.ws_clients = Gauge("actwatch_ws_clients", "Connected WebSocket clients.", registry=r)
        self.ws_dropped = Counter(
            "actwatch_ws_dropped_messages", "Messages dropped for slow WebSocket clients.", registry=r
        )
        self.onnx_provider_active = Gauge(
            "actwatch_onnx_provider_active",
            "1 for each ONNX Runtime provider a network actually runs on (a CPU fallback shows here).",
            ["component", "provider"],
            registry=r,
        )
        self.delivered = Counter(
            "actwatch_delivered",
            "Events a delivery target acknowledged (MQTT PUBACK, HTTP 2xx).",
            ["target"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "actwatch_delivery_failures",
            "Failed delivery attempts per target (each is retried).",
            ["target"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "actwatch_outbox_pending", "Events waiting in the outbox per target.", ["target"], registry=r
        )
        self.outbox_oldest_age = Gauge(
            "actwatch_outbox_oldest_pending_age_seconds",
            "Age of the oldest event waiting for a target (0 when none waits).",
            ["target"],
            registry=r,
        )
        self.outbox_bound = Gauge(
            "actwatch_outbox_bound", "Most events the outbox keeps per target (outbox.max_pending).", registry=r
        )
        self.outbox_dropped = Counter(
            "actwatch_outbox_dropped",
            "Events dropped from a full outbox (oldest first), per target.",
            ["target"],
            registry=r,
        )
        self.model_trained = Gauge(
            "actwatch_model_trained",
            "1 when the action model was trained, 0 when it never was (its answers are meaningless).",
            registry=r,
        )
        self._providers: dict[str, tuple[str, ...]] = {}
        self._pipeline_counters: Callable[[], StageCounters | None] | None = None
        self._model: ModelProvenance | None = None
        self._totals: dict[str, _CameraTotals] = {}
        self._sources: list[Callable[[], Iterable[Metric]]] = []
        self._lock = threading.Lock()
        for stage in STAGES:  # export every stage from the start, so dashboards see zeros, not gaps
            self.stage_latency.labels(stage=stage)

    # ---------------------------------------------------------------------------------------- pipeline
    def watch_pipeline(self, counters: Callable[[], StageCounters | None]) -> None:
        """Expose the pipelined runtime's own counters (``counters()``, read at each scrape; ``None`` while
        it does not run) as ``actwatch_pipeline_*``: each stage's busy seconds (their rate is the stage's
        occupancy: the detector near 1 is the box's limit), the queues' drops, stale frames, events written
        without evidence, failed batches and the intake's waits for frames due soon."""
        self._pipeline_counters = counters
        self.registry.register(_PipelineCollector(counters))

    def pipeline_counters(self) -> StageCounters | None:
        """What :meth:`watch_pipeline` reads (``GET /system`` shows it); ``None`` when nothing is watched."""
        return self._pipeline_counters() if self._pipeline_counters is not None else None

    def observe_stage(self, stage: Stage, seconds: float) -> None:
        """Record one stage's latency (``detect``, ``track``, ``encode`` or ``classify``)."""
        self.stage_latency.labels(stage=stage).observe(seconds)

    def observe_frame_to_event(self, seconds: float) -> None:
        self.frame_to_event.observe(max(0.0, seconds))

    def count_processed(self, camera_id: str, frames: int = 1) -> None:
        self.frames_processed.labels(camera=camera_id).inc(frames)

    def count_skipped(self, camera_id: str, frames: int) -> None:
        """Frames the compute loop skipped because a newer one of the same camera was waiting."""
        if frames > 0:
            self.frames_dropped.labels(camera=camera_id).inc(frames)

    def set_processed_fps(self, camera_id: str, fps: float) -> None:
        self.fps.labels(camera=camera_id, stage="processed").set(fps)

    def set_active_tracks(self, camera_id: str, tracks: int) -> None:
        self.active_tracks.labels(camera=camera_id).set(tracks)

    def count_event(self, camera_id: str, label: str) -> None:
        self.events.labels(camera=camera_id, label=label).inc()

    def count_store_failure(self) -> None:
        self.store_failures.inc()

    def update_camera(
        self, camera_id: str, *, frames_read: int, frames_dropped: int, reconnects: int, fps: float
    ) -> None:
        """Fold a reader's cumulative figures into the counters (a reader restart resets them: fine)."""
        with self._lock:
            totals = self._totals.setdefault(camera_id, _CameraTotals())
            for name, counter, value in (
                ("frames_read", self.frames_read, frames_read),
                ("frames_dropped", self.frames_dropped, frames_dropped),
                ("reconnects", self.reconnects, reconnects),
            ):
                previous = getattr(totals, name)
                delta = value - previous if value >= previous else value  # smaller: the reader restarted
                if delta > 0:
                    counter.labels(camera=camera_id).inc(delta)
                setattr(totals, name, value)
        self.fps.labels(camera=camera_id, stage="read").set(fps)

    def remove_camera(self, camera_id: str) -> None:
        """Stop exporting a removed camera's series."""
        with self._lock:
            self._totals.pop(camera_id, None)
        for metric in (self.frames_read, self.frames_processed, self.frames_dropped, self.reconnects):
            _remove(metric, camera_id)
        _remove(self.active_tracks, camera_id)
        for stage in ("read", "processed"):
            _remove(self.fps, camera_id, stage)

    def set_active_providers(self, component: str, providers: Sequence[str]) -> None:
        """Record the ONNX Runtime providers ``component`` (``detector``, ``model``) runs on.

        Example:
            >>> m = ServiceMetrics()
            >>> m.set_active_providers("detector", ["CPUExecutionProvider"])
            >>> m.active_providers(), m.registry.get_sample_value(
            ...     "actwatch_onnx_provider_active", {"component": "detector", "provider": "CPUExecutionProvider"})
            ({'detector': ['CPUExecutionProvider']}, 1.0)
        """
        with self._lock:
            for old in self._providers.get(component, ()):
                _remove(self.onnx_provider_active, component, old)
            self._providers[component] = tuple(providers)
        for provider in providers:
            self.onnx_provider_active.labels(component=component, provider=provider).set(1)

    def set_model_provenance(self, provenance: ModelProvenance) -> None:
        """Record whether the action model was trained and its backbone's starting weights (``/readyz``).

        Example:
            >>> m = ServiceMetrics()
            >>> m.set_model_provenance(ModelProvenance(False, "random"))
            >>> m.model_provenance(), m.registry.get_sample_value("actwatch_model_trained")
            (ModelProvenance(trained=False, backbone='random'), 0.0)
        """
        with self._lock:
            self._model = provenance
        self.model_trained.set(1.0 if provenance.trained else 0.0)

    def model_provenance(self) -> ModelProvenance | None:
        with self._lock:
            return self._model

    def active_providers(self) -> dict[str, list[str]]:
        """The providers each network runs on, best first (shown by ``/readyz``)."""
        with self._lock:
            return {component: list(providers) for component, providers in self._providers.items()}

    # ---------------------------------------------------------------------------------------- delivery
    def add_delivery_target(self, target: str) -> None:
        """Show ``target``'s counters at 0 from the start (a labelled counter appears only once touched,
        and an alert on drops needs the series before the first one).

        Example:
            >>> m = ServiceMetrics()
            >>> m.add_delivery_target("ops")
            >>> m.registry.get_sample_value("actwatch_outbox_dropped_total", {"target": "ops"})
            0.0
        """
        for counter in (self.delivered, self.delivery_failures, self.outbox_dropped):
            counter.labels(target=target)

    def count_delivered(self, target: str) -> None:
        self.delivered.labels(target=target).inc()

    def count_delivery_failure(self, target: str) -> None:
        self.delivery_failures.labels(target=target).inc()

    def count_outbox_dropped(self, target: str, events: int) -> None:
        if events > 0:
            self.outbox_dropped.labels(target=target).inc(events)

    def set_outbox(self, target: str, *, pending: int, oldest_age_s: float, bound: int) -> None:
        """The outbox figures of ``target`` (refreshed from the database when ``/metrics`` is read).

        Example:
            >>> m = ServiceMetrics()
            >>> m.set_outbox("mqtt", pending=3, oldest_age_s=12.5, bound=1000)
            >>> m.registry.get_sample_value("actwatch_outbox_pending", {"target": "mqtt"})
            3.0
        """
        self.outbox_pending.labels(target=target).set(pending)
        self.outbox_oldest_age.labels(target=target).set(max(0.0, oldest_age_s))
        self.outbox_bound.set(bound)

    # --------------------------------------------------------------------------------------- websocket
    def ws_client_connected(self) -> None:
        self.ws_clients.inc()

    def ws_client_disconnected(self) -> None:
        self.ws_clients.dec()

    def count_ws_dropped(self, messages: int) -> None:
        if messages > 0:
            self.ws_dropped.inc(messages)

    def add_source(self, families: Callable[[], list[Metric]]) -> None:
        """Merge ``families()`` (other processes' metric families: the compute processes of
        ``pipeline.processes``) into :meth:`render`, read at each scrape."""
        self._sources.append(families)

    def samples(self, *names: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """The samples called ``names`` as :meth:`render` exports them (the sources merged in), by name and
        sorted labels, from one collection.

        Example:
            >>> m = ServiceMetrics()
            >>> m.observe_stage("detect", 0.25)
            >>> name = "actwatch_stage_latency_seconds_sum"
            >>> m.samples(name)[(name, (("stage", "detect"),))]
            0.25
        """
        collector = _MergedFamilies([self.registry.collect, *self._sources]) if self._sources else self.registry
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
            for family in collector.collect()
            for sample in family.samples
            if sample.name in names
        }

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry (and of the sources, merged)."""
        if not self._sources:
            return generate_latest(self.registry)
        return generate_latest(_MergedFamilies([self.registry.collect, *self._sources]))


class _MergedFamilies(Collector):
    """Families of several registries as one: the same sample (name and labels) in more than one is added
    up (counters, histograms: the processes' cameras and batches together), or its largest value is taken
    (gauges: each process sets the same provider and model gauges; per-camera gauges never collide).

    Example:
        >>> a, b = ServiceMetrics(), ServiceMetrics()
        >>> a.observe_stage("detect", 0.01); b.observe_stage("detect", 0.02)
        >>> a.set_active_providers("detector", ["CPUExecutionProvider"])
        >>> b.set_active_providers("detector", ["CPUExecutionProvider"])
        >>> a.add_source(lambda: list(b.registry.collect()))
        >>> text = a.render().decode()
        >>> 'actwatch_stage_latency_seconds_count{stage="detect"} 2.0' in text
        True
        >>> 'actwatch_onnx_provider_active{component="detector",provider="CPUExecutionProvider"} 1.0' in text
        True
    """

    def __init__(self, sources: list[Callable[[], Iterable[Metric]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for source in self._sources:
            for family in source():
                if family.name not in merged:
                    merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                    values[family.name] = {}
                into = values[family.name]
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in into:
                        into[key] = sample.value
                    elif family.type == "gauge":
                        into[key] = max(into[key], sample.value)
                    elif sample.name.endswith("_created"):
                        into[key] = min(into[key], sample.value)
                    else:
                        into[key] = into[key] + sample.value
        for name, family in merged.items():
            for (sample_name, labels), value in values[name].items():
                family.add_sample(sample_name, dict(labels), value)
            yield family


def _remove(metric: Counter | Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never exported for this camera
        metric.remove(*labels)


class _PipelineCollector(Collector):
    """The pipelined runtime's :class:`~actwatch.service.staged.StageCounters` as Prometheus counters."""

    def __init__(self, counters: Callable[[], StageCounters | None]) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        c = self._counters()
        if c is None:
            return
        yield _labelled(
            "busy_seconds", "stage", c.busy_s, "Seconds each pipelined stage's thread was busy; rate(): its occupancy."
        )
        yield _labelled(
            "queue_dropped",
            "queue",
            c.drops,
            "Batches a full queue between two stages dropped (the oldest: the newer frames go on).",
        )
        for name, value, text in (
            ("stale_frames", c.stale, "Frames older than pipeline.max_frame_age_s, dropped before detection."),
            (
                "evidence_dropped",
                c.evidence_dropped,
                "Events written without their snapshot and crops under back-pressure (pipeline.max_pending_evidence).",
            ),
            ("failures", c.failures, "Batches a stage failed on (logged; the stage went on with the next)."),
            (
                "frame_wait_seconds",
                c.frame_waited_s,
                "Seconds the intake waited for a camera's frame due soon (pipeline.frame_wait_ms).",
            ),
        ):
            yield CounterMetricFamily(f"actwatch_pipeline_{name}", text, value=value)


def _labelled(name: str, label: str, values: dict[str, float] | dict[str, int], text: str) -> CounterMetricFamily:
    family = CounterMetricFamily(f"actwatch_pipeline_{name}", text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family
