"""Which graph a network is served from (actwatch.onnx_inputs.uint8_input_if_wanted): the uint8-input copy
where the conversion is to run in the graph, the original where the host converts, on a real ONNX file."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from actwatch.errors import ConfigError
from actwatch.onnx_choices import CPU, CUDA
from actwatch.onnx_inputs import uint8_input_if_wanted
from actwatch.paths import CACHE_DIR_ENV

GPU_THEN_CPU = [f"{CUDA}:1", CPU]  # as select_providers names a chosen device


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 4, 4])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 4, 4])
    nodes = [helper.make_node("Identity", ["images"], ["out"])]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)], ir_version=8
    )
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path


def test_auto_derives_the_copy_where_a_gpu_runs_the_graph_and_not_on_the_cpu(
    graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert uint8_input_if_wanted(graph, "auto", [CPU], setting_key="detector.preprocess") is None
    assert uint8_input_if_wanted(graph, "host", GPU_THEN_CPU, setting_key="detector.preprocess") is None
    derived = uint8_input_if_wanted(graph, "auto", GPU_THEN_CPU, setting_key="detector.preprocess")
    assert derived is not None and derived.parent == tmp_path / "cache" / "derived"
    assert [i.name for i in onnx.load(str(derived)).graph.input] == ["images_u8"]


@pytest.mark.usefixtures("blocked_cache")
def test_a_copy_that_cannot_be_derived_warns_under_auto_and_is_an_error_when_asked_for(
    graph: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="actwatch.onnx_inputs"):
        assert uint8_input_if_wanted(graph, "auto", GPU_THEN_CPU, setting_key="model.preprocess") is None
    assert "model.preprocess: auto: images stay converted on the host" in caplog.text
    with pytest.raises(ConfigError, match=r"set model\.preprocess to host"):
        uint8_input_if_wanted(graph, "graph", [CPU], setting_key="model.preprocess", error=ConfigError)
