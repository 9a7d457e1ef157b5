"""Service metrics: a registry per app, reader totals folded into counters, removal of cameras."""

from __future__ import annotations

import dataclasses

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from actwatch.service.metrics import ServiceMetrics
from actwatch.service.staged import StageCounters


def samples(m: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_registries_are_per_instance() -> None:
    a, b = ServiceMetrics(), ServiceMetrics()  # a second app in the same process must not clash
    a.count_event("cam1", "fighting")
    assert a.registry.get_sample_value("actwatch_events_total", {"camera": "cam1", "label": "fighting"}) == 1.0
    assert b.registry.get_sample_value("actwatch_events_total", {"camera": "cam1", "label": "fighting"}) is None
    assert REGISTRY.get_sample_value("actwatch_events_total", {"camera": "cam1", "label": "fighting"}) is None


def test_reader_totals_become_counters() -> None:
    m = ServiceMetrics()
    m.update_camera("cam1", frames_read=100, frames_dropped=5, reconnects=0, fps=10.0)
    m.update_camera("cam1", frames_read=150, frames_dropped=5, reconnects=1, fps=9.0)
    m.update_camera("cam1", frames_read=20, frames_dropped=0, reconnects=0, fps=8.0)  # reader restarted
    s = samples(m)
    assert s[("actwatch_camera_frames_read_total", (("camera", "cam1"),))] == 170
    assert s[("actwatch_camera_frames_dropped_total", (("camera", "cam1"),))] == 5
    assert s[("actwatch_camera_reconnects_total", (("camera", "cam1"),))] == 1
    assert s[("actwatch_camera_fps", (("camera", "cam1"), ("stage", "read")))] == 8.0


def test_pipeline_figures_and_removal() -> None:
    m = ServiceMetrics()
    m.observe_stage("detect", 0.02)
    m.observe_stage("classify", 0.004)
    m.observe_frame_to_event(0.3)
    m.count_processed("cam1", 3)
    m.set_processed_fps("cam1", 9.5)
    m.set_active_tracks("cam1", 4)
    m.ws_client_connected()
    m.count_store_failure()
    s = samples(m)
    assert s[("actwatch_stage_latency_seconds_count", (("stage", "detect"),))] == 1
    assert s[("actwatch_stage_latency_seconds_count", (("stage", "track"),))] == 0  # exported from the start
    assert s[("actwatch_frame_to_event_seconds_count", ())] == 1
    assert s[("actwatch_camera_frames_processed_total", (("camera", "cam1"),))] == 3
    assert s[("actwatch_active_tracks", (("camera", "cam1"),))] == 4
    assert s[("actwatch_ws_clients", ())] == 1
    assert s[("actwatch_event_store_failures_total", ())] == 1
    m.remove_camera("cam1")
    m.remove_camera("never-seen")
    assert not [k for k in samples(m) if ("camera", "cam1") in k[1]]


def test_the_pipelined_runtime_s_counters_are_read_at_each_scrape() -> None:
    m = ServiceMetrics()
    running: list[StageCounters] = []
    m.watch_pipeline(lambda: running[-1] if running else None)
    assert not [k for k in samples(m) if k[0].startswith("actwatch_pipeline_")]  # not running: no series
    running.append(
        StageCounters(
            wall_s=10.0,
            busy_s={"detect": 9.5, "track": 0.3},
            occupancy={"detect": 0.95, "track": 0.03},
            drops={"frames": 4, "detected": 0},
            stale=2,
            evidence_dropped=1,
            failures=0,
            frame_waited_s=0.25,
        )
    )
    s = samples(m)
    assert s[("actwatch_pipeline_busy_seconds_total", (("stage", "detect"),))] == 9.5
    assert s[("actwatch_pipeline_busy_seconds_total", (("stage", "track"),))] == 0.3
    assert s[("actwatch_pipeline_queue_dropped_total", (("queue", "frames"),))] == 4
    assert s[("actwatch_pipeline_queue_dropped_total", (("queue", "detected"),))] == 0
    assert s[("actwatch_pipeline_stale_frames_total", ())] == 2
    assert s[("actwatch_pipeline_evidence_dropped_total", ())] == 1
    assert s[("actwatch_pipeline_failures_total", ())] == 0
    assert s[("actwatch_pipeline_frame_wait_seconds_total", ())] == 0.25
    running[-1] = dataclasses.replace(running[-1], stale=5)  # a later scrape reads the counters again
    assert samples(m)[("actwatch_pipeline_stale_frames_total", ())] == 5
