"""The service configuration: YAML + environment, strictness, error messages that name the key."""

from __future__ import annotations

import logging
import os
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from actwatch.config import AppConfig, CameraConfig, load_config
from actwatch.errors import ConfigError

FULL_YAML = """\
server:
  host: 0.0.0.0
  port: 8080
  token: change-me-to-a-long-random-string
  cors_origins: ["http://localhost:3000"]
  ws_queue_size: 128
  max_request_body_bytes: 65536
  max_cameras: 16
  max_page_size: 200
data_dir: {data_dir}
sources:
  file_dirs: [{video_dir}]
cameras:
  - id: front-door
    name: Front door
    url: rtsp://admin:s3cret@192.168.1.20:554/stream1
    zone: [[0, 300], [640, 300], [640, 480], [0, 480]]
  - id: lobby
    url: "0"
    enabled: false
  - id: demo
    url: {video}
    loop: true
    realtime: true
capture:
  stall_timeout_s: 5
  open_timeout_s: 8
  backoff_initial_s: 0.5
  backoff_max_s: 20
  backoff_factor: 2
  backoff_jitter: 0.1
  max_attempts: null
  rtsp_transport: tcp
  ffmpeg_options: {{analyzeduration: "500000"}}
detector:
  weights: /opt/actwatch/detector.pt
  person_class_ids: [0, 1]
  conf: 0.3
  iou: 0.6
  imgsz: 640
  device: cuda:0
  half: true
tracker:
  track_high_thresh: 0.25
  track_low_thresh: 0.1
  new_track_thresh: 0.25
  lost_track_s: 1.0
  match_thresh: 0.8
  fuse_score: true
model:
  dir: /opt/actwatch/model
  providers: [CUDAExecutionProvider, CPUExecutionProvider]
  intra_op_threads: 4
pipeline:
  stride: 5
  max_tracks_per_camera: 32
  max_buffer_mb: 512
  tick_interval_s: 0.01
  publish_tracks: true
alerts:
  rules:
    - {{label: fighting, threshold: 0.8, n: 3, m: 5, cooldown_s: 30, min_track_age_s: 1.0}}
    - {{label: falling, threshold: 0.7, n: 2, m: 4, cooldown_s: 60, min_track_age_s: 0.5, enabled: true}}
storage:
  database_url: null
  retention_days: 30
  purge_interval_s: 3600
  keep_crops: true
log_level: info
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ACTWATCH_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "actwatch.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def full_yaml(tmp_path: Path) -> str:
    video = tmp_path / "demo.avi"
    video.write_bytes(b"not really a video, but the file exists")
    return FULL_YAML.format(data_dir=tmp_path / "data", video=video, video_dir=tmp_path)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_full_yaml_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, full_yaml(tmp_path)))
    assert cfg.server.host == "0.0.0.0" and cfg.server.port == 8080
    assert cfg.server.token is not None and cfg.server.token.get_secret_value().startswith("change-me")
    assert [c.id for c in cfg.cameras] == ["front-door", "lobby", "demo"]
    assert cfg.cameras[0].zone == [(0, 300), (640, 300), (640, 480), (0, 480)]
    assert cfg.cameras[1].name == "lobby" and not cfg.cameras[1].enabled
    assert cfg.detector.person_class_ids == [0, 1] and cfg.detector.half
    assert cfg.tracker.lost_track_s == 1.0
    assert cfg.capture.ffmpeg_options == {"analyzeduration": "500000"}
    assert [r.label for r in cfg.alerts.rules] == ["fighting", "falling"]
    assert cfg.log_level == "INFO"
    assert cfg.database_url == f"sqlite:///{(tmp_path / 'data' / 'events.db').as_posix()}"


def test_defaults_without_file() -> None:
    cfg = load_config(None)
    assert cfg.server.host == "127.0.0.1" and cfg.server.port == 8000 and cfg.server.token is None
    assert cfg.server.ws_queue_size == 256 and cfg.server.cors_origins == []
    assert cfg.detector.person_class_ids is None  # inferred from the detector: Normal and Fall are persons
    assert cfg.detector.imgsz is None and cfg.detector.device is None  # the model's size; the best providers
    assert cfg.pipeline.stride == 5 and cfg.alerts.rules == []


def test_unknown_key_is_named_with_a_suggestion(tmp_path: Path) -> None:
    message = error_of(tmp_path, "server:\n  prot: 9000\n")
    assert "server.prot: unknown key; did you mean 'port'?" in message
    assert "unknown key" in error_of(tmp_path, "cameras:\n  - id: a\n    url: rtsp://h/x\n    zoom: 2\n")
    assert "cameras.0.zoom" in error_of(tmp_path, "cameras:\n  - id: a\n    url: rtsp://h/x\n    zoom: 2\n")
    assert "colour: unknown key" in error_of(tmp_path, "colour: red\n")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("cameras:\n  - id: a\n    url: ftp://u:pw@host/x\n", "cameras.0.url", "ftp"),
        ("cameras:\n  - id: Bad Id\n    url: rtsp://h/x\n", "cameras.0.id", "pattern"),
        (
            "cameras:\n  - id: a\n    url: rtsp://h/x\n    zone: [[0, 0], [1, 1]]\n",
            "cameras.0.zone",
            "3 points",
        ),
        (
            "cameras:\n  - id: a\n    url: rtsp://h/x\n    zone: [[0,0],[1,1],[2,2]]\n",
            "cameras.0.zone",
            "zero area",
        ),
        ("server:\n  port: 70000\n", "server.port", "65535"),
        ("server:\n  token: short\n", "server.token", "16 characters"),
        ("alerts:\n  rules:\n    - {label: fight, n: 6, m: 5}\n", "alerts.rules.0", "n (6) must be <= m (5)"),
        ("alerts:\n  rules:\n    - {label: fight, threshold: 1.5}\n", "alerts.rules.0.threshold", "1"),
        (
            "alerts:\n  rules:\n    - {label: a}\n    - {label: a}\n",
            "alerts.rules",
            "two rules for label 'a'",
        ),
        ("detector:\n  imgsz: 500\n", "detector.imgsz", "multiple of 32"),
        ("storage:\n  database_url: mysql://x/y\n", "storage.database_url", "sqlite"),
        ("log_level: verbose\n", "log_level", "DEBUG"),
        ("capture:\n  backoff_initial_s: 5\n  backoff_max_s: 1\n", "capture", "backoff_max_s"),
        ("tracker:\n  lost_track_s: 0\n", "tracker.lost_track_s", "greater than 0"),
        ("pipeline:\n  detect_batch: 0\n", "pipeline.detect_batch", "'auto' or a number of frames from 1"),
        ("pipeline:\n  detect_batch: fast\n", "pipeline.detect_batch", "got 'fast'"),
        ("pipeline:\n  detect_niceness: 20\n", "pipeline.detect_niceness", "niceness from 0 to 19, got 20"),
        ("pipeline:\n  frame_wait_ms: -5\n", "pipeline.frame_wait_ms", "milliseconds from 0 to 1000, got -5"),
        ("pipeline:\n  frame_wait_ms: true\n", "pipeline.frame_wait_ms", "got True"),
        ("pipeline:\n  gpu_wait: sleep\n", "pipeline.gpu_wait", "'auto', 'spin', 'yield' or 'blocking'"),
        ("model:\n  max_batch: 0\n", "model.max_batch", "greater than or equal to 1"),
        ("capture:\n  max_fps: 0\n", "capture.max_fps", "greater than 0"),
        ("detector:\n  device: cdua\n", "detector.device", "unknown ONNX Runtime provider 'cdua'; use auto"),
        ("detector:\n  device: [cuda, tpu]\n", "detector.device", "unknown ONNX Runtime provider 'tpu'"),
        ("model:\n  providers: [foo]\n", "model.providers", "unknown ONNX Runtime provider 'foo'"),
        (
            "cameras:\n  - {id: a, url: /videos/a.mp4, max_fps: 5}\n",
            "cameras.0",
            "max_fps applies to network cameras (rtsp://, http(s)://) only",
        ),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, fragment: str) -> None:
    message = error_of(tmp_path, text)
    line = next((ln for ln in message.splitlines() if ln.strip().startswith(f"{key}:")), None)
    assert line is not None, message
    assert fragment in line


def test_duplicate_camera_ids(tmp_path: Path) -> None:
    text = "cameras:\n  - id: a\n    url: rtsp://h/x\n  - id: a\n    url: rtsp://h/y\n"
    assert "cameras: duplicate camera id 'a'" in error_of(tmp_path, text)


def test_errors_never_show_camera_passwords(tmp_path: Path) -> None:
    message = error_of(tmp_path, "cameras:\n  - id: a\n    url: ftp://admin:topsecret@host/x\n")
    assert "topsecret" not in message and "cameras.0.url" in message


def test_yaml_syntax_error_has_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, "server:\n  port: 8000\ncameras: [\n  {id: a\n")
    assert "invalid YAML" in message and "line " in message
    message = error_of(tmp_path, "server:\n  host: a\n  bad indent: [\n")
    assert "line 3" in message or "line 4" in message


def test_yaml_duplicate_key_is_an_error(tmp_path: Path) -> None:
    message = error_of(tmp_path, "server:\n  port: 1\n  port: 2\n")
    assert "duplicate key 'port'" in message and "line 3" in message


def test_yaml_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert "mapping" in error_of(tmp_path, "- a\n- b\n")
    assert "_env_file: unknown key" in error_of(tmp_path, "_env_file: /etc/passwd\n")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n")).server.port == 8000


def test_environment_overrides_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "server:\n  host: 0.0.0.0\n  port: 8001\nlog_level: INFO\n")
    monkeypatch.setenv("ACTWATCH_SERVER__PORT", "9100")
    monkeypatch.setenv("ACTWATCH_LOG_LEVEL", "debug")
    monkeypatch.setenv("ACTWATCH_SERVER__CORS_ORIGINS", '["http://a.example:3000"]')
    monkeypatch.setenv("ACTWATCH_DETECTOR__PERSON_CLASS_IDS", "[0, 1]")
    cfg = load_config(path)
    assert cfg.server.port == 9100  # from the environment
    assert cfg.server.host == "0.0.0.0"  # from the file, merged, not replaced
    assert cfg.log_level == "DEBUG"
    assert cfg.server.cors_origins == ["http://a.example:3000"]
    assert cfg.detector.person_class_ids == [0, 1]


def test_environment_errors_name_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTWATCH_SERVER__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_config(None)
    monkeypatch.delenv("ACTWATCH_SERVER__PORT")
    monkeypatch.setenv("ACTWATCH_SERVER__PROT", "1")
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key"):
        load_config(None)
    monkeypatch.delenv("ACTWATCH_SERVER__PROT")
    monkeypatch.setenv("ACTWATCH_CAMERAS", "[{not json")
    with pytest.raises(ConfigError, match="cameras: ACTWATCH_CAMERAS is not valid JSON"):
        load_config(None)


def test_public_dict_masks_credentials(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, full_yaml(tmp_path)))
    cfg.storage.database_url = "postgresql+psycopg://actwatch:dbpass99@db.example/actwatch"
    public = cfg.public_dict()
    text = repr(public)
    assert "s3cret" not in text and "dbpass99" not in text and "change-me" not in text
    assert public["server"]["token"] == "***"
    assert public["cameras"][0]["url"].endswith("@192.168.1.20:554/stream1")
    assert "db.example" in public["storage"]["database_url"]
    # repr/str of the models never show them either (they end up in logs)
    assert "s3cret" not in repr(cfg) and "change-me" not in repr(cfg)
    assert "s3cret" not in str(cfg.cameras[0])


def test_assignment_is_validated() -> None:
    cfg = AppConfig()
    with pytest.raises(ValueError, match="port"):
        cfg.server.port = 0


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    found: set[type[BaseModel]] = set()
    todo: list[typing.Any] = [root]
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if tp in found:
                continue
            found.add(tp)
            todo.extend(f.annotation for f in tp.model_fields.values())
        else:
            todo.extend(typing.get_args(tp))
    return found


def test_every_section_is_strict_and_documented() -> None:
    models = _models(AppConfig)
    assert CameraConfig in models and len(models) >= 10
    for model in models:
        assert model.model_config.get("extra") == "forbid", model
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"


def test_only_unknown_variables_are_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ACTWATCH_CACHE_DIR", "/tmp/actwatch-cache")  # the project's own, not configuration
    monkeypatch.setenv("ACTWATCH_SAMPLE_VIDEO", "/tmp/vtest.avi")
    monkeypatch.setenv("ACTWATCH_COLOUR", "red")
    with caplog.at_level(logging.WARNING, logger="actwatch.config"):
        load_config(None)
    assert "ACTWATCH_COLOUR" in caplog.text
    assert "ACTWATCH_CACHE_DIR" not in caplog.text and "ACTWATCH_SAMPLE_VIDEO" not in caplog.text


def test_stage_settings_are_the_stages_own_models() -> None:
    from actwatch.capture.settings import CaptureSettings
    from actwatch.tracker.bytetrack import TrackerSettings
    from actwatch.tracker.detector import DetectorSettings

    cfg = AppConfig()
    assert isinstance(cfg.capture, CaptureSettings) and cfg.capture.rtsp_transport == "tcp"
    assert isinstance(cfg.detector, DetectorSettings) and cfg.detector.device is None
    assert isinstance(cfg.tracker, TrackerSettings)


def test_train_config_uses_the_same_strict_loader(tmp_path: Path) -> None:
    from actwatch.train.config import load_train_config

    path = tmp_path / "train.yaml"
    path.write_text("epochs: 4\nlr: 0.001\nepochs: 5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 3, column 1: invalid YAML: found duplicate key 'epochs'"):
        load_train_config(path)
    path.write_text("epochs: 4\nmodel:\n  temporl: gru\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"model\.temporl: unknown key; did you mean 'temporal'\?"):
        load_train_config(path)
