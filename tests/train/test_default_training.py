"""The default training run on a small real dataset, judged against its baselines.

The dataset is vtest.avi's pedestrians, labelled ``walking`` or ``standing`` by their motion
(:mod:`tests.train.vtest_behaviour`): real detector, real tracker, the live service's static rule, the
assets' ImageNet MobileNetV2, cached features, every training option at its default (only the window
length is set to the pieces' 8 samples).

What this proves is that the figures tell the truth on real data: the run reports accuracy, macro-F1
and balanced accuracy beside the majority-class and uniform baselines, warns exactly when it is no
better than them, and the dataset report shows what the classes hold.

Measured on this machine (2 shared cores, about 5 minutes), default settings, seed 0: 105 pieces of
40 tracks (32 standing, 73 walking), 1 static track left out; validation macro-F1 0.74 against a
majority baseline of 0.39, but test macro-F1 0.46 against 0.39 (uniform 0.49), balanced accuracy 0.50
against 0.50, accuracy 0.61 against 0.65: the defaults do NOT beat the baselines on the test split of
this task, and the run says so with its warning. The issue's goal (defaults that beat the majority
baseline by a clear margin on real data) is not reached here; a linear probe on the per-window standard
deviation of the features separates the classes on such splits (recall about 0.75 / 0.81), so the
head, not the data alone, falls short.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actwatch.train.config import TrainConfig
from actwatch.train.dataset_report import build_report, write_report
from actwatch.train.trainer import train
from tests.train.vtest_behaviour import vtest_tracks, write_behaviour_dataset

PIECE = 8  # samples per sequence: 1.6 s at 5 fps


@pytest.mark.slow
def test_default_training_on_vtest_is_reported_against_its_baselines(
    vtest_path: Path, detector_weights: Path, tmp_path: Path
) -> None:
    tracks = vtest_tracks(vtest_path, detector_weights, step=2, fps=5.0)
    ds, static = write_behaviour_dataset(tracks, tmp_path / "ds", piece_len=PIECE, max_walking=3, fps=5.0)
    # The static rule leaves out the cloth on the grass (and the rock when it is tracked), no standing person.
    assert static >= 1
    counts = {label: sum(r.label == label for r in ds.sequences) for label in ("standing", "walking")}
    assert counts["standing"] >= 10 and counts["walking"] >= 40, counts
    report = build_report(ds, [])
    paths = write_report(report, ds)
    assert (tmp_path / "ds" / "contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(paths) == 3

    result = train(TrainConfig(out_dir=tmp_path / "exp", seq_len=PIECE, tensorboard=False), ds.root, progress=False)
    assert result.test is not None
    test, majority = result.test, result.test["baselines"]["majority"]
    print(
        f"\ndefault run on vtest walking/standing ({counts}, {static} static tracks left out): "
        f"test macro-F1 {test['macro_f1']:.3f} "
        f"(majority baseline {majority['macro_f1']:.3f}), balanced accuracy {test['balanced_accuracy']:.3f} "
        f"(majority {majority['balanced_accuracy']:.3f}), accuracy {test['accuracy']:.3f} "
        f"(majority {majority['accuracy']:.3f}); warning: {result.warning}"
    )
    # The figures sit beside their baselines in results.json and report.md ...
    results = json.loads((result.run_dir / "results.json").read_text())
    assert results["test"]["baselines"]["majority"]["accuracy"] == pytest.approx(
        max(counts_of(results)) / test["count"]
    )
    text = (result.run_dir / "report.md").read_text()
    assert "majority-class baseline" in text and "balanced accuracy" in text
    # ... and the run warns exactly when it is no better than them.
    baselines = test["baselines"].values()
    best_f1 = max(b["macro_f1"] for b in baselines)
    best_balanced = max(b["balanced_accuracy"] for b in baselines)
    beats = test["macro_f1"] > best_f1 + 0.02 and test["balanced_accuracy"] > best_balanced + 0.02
    assert (result.warning is None) == beats
    assert results["test"]["beats_baseline"] == beats and results["warning"] == result.warning
    if not beats:
        assert "no better than a baseline on test" in text


def counts_of(results: dict[str, Any]) -> list[int]:
    return [int(c["support"]) for c in results["test"]["per_class"].values()]
