"""Which tensors an ONNX file keeps in other files, read without the onnx package, checked against it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data, uses_external_data

from streamer.model.external_data import NotProtobuf, external_tensors
from streamer.model.registry import champion

REPO = Path(__file__).resolve().parents[2]


def _with_external(model: onnx.ModelProto) -> bytes:
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0,
                                   convert_attribute=True)  # also constants in node attributes, subgraphs included
    blob: bytes = model.SerializeToString()
    return blob


def _if_model() -> onnx.ModelProto:
    """A graph whose only tensor sits in an If node's then-branch: a subgraph inside an attribute."""
    weights = numpy_helper.from_array(np.arange(4, dtype=np.float32), name="inner_weights")
    branch = helper.make_graph([helper.make_node("Constant", [], ["y"], value=weights)], "then", [],
                               [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    other = helper.make_graph([helper.make_node("Constant", [], ["y"], value_float=0.0)], "else", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph)


class TestExternalTensors:
    def test_the_shipped_model_keeps_every_tensor_inside(self) -> None:
        assert external_tensors(champion(REPO / "onnx_models").path.read_bytes()) == []

    def test_every_initializer_moved_out_is_found_as_the_onnx_package_finds_it(self) -> None:
        model = onnx.load_model_from_string(champion(REPO / "onnx_models").path.read_bytes())
        blob = _with_external(model)
        expected = [t.name for t in onnx.load_model_from_string(blob).graph.initializer if uses_external_data(t)]
        assert expected and sorted(external_tensors(blob)) == sorted(expected)

    def test_a_tensor_in_a_subgraph_is_found(self) -> None:
        blob = _with_external(_if_model())
        branch = onnx.load_model_from_string(blob).graph.node[0].attribute
        then = next(a.g for a in branch if a.name == "then_branch")
        assert uses_external_data(then.node[0].attribute[0].t), "the test's tensor was not moved out"
        assert external_tensors(blob) == ["inner_weights"]
        assert external_tensors(_if_model().SerializeToString()) == []

    @pytest.mark.parametrize("blob", [b"\x0a\xff\xff\xff\xff\x0f", b"\x0b", b"\x0a\x05ab"])
    def test_bytes_that_are_not_protobuf_are_refused(self, blob: bytes) -> None:
        with pytest.raises(NotProtobuf):
            external_tensors(blob)
