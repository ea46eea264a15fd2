"""ONNX files for the ONNX tests, with the `onnx` package (PyPI), the format's reference.

  check MODEL                 onnx.checker (full check, shapes inferred) passes; prints the ops
  centroid WEIGHTS BIAS OUT   writes a linear classifier Flatten -> MatMul -> Add -> Softmax
                              whose weights ([784, 10] then [10], little-endian float32) the
                              test computed, and checks it
  bag TABLE ROWS COLS BIAS LENGTH OUT
                              writes a text classifier Gather -> ReduceMean -> Add: the mean of
                              the token ids' rows of TABLE ([ROWS, COLS] float32) plus BIAS,
                              over int64 ids [n, LENGTH], and checks it
  expand OUT                  writes a hostile graph: a few hundred bytes whose Expand would
                              make a tensor of 7.8 x 10^11 numbers from one image
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def check(path):
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    print(" ".join(node.op_type for node in model.graph.node))


def centroid(weights_path, bias_path, out):
    weights = np.fromfile(weights_path, dtype="<f4").reshape(784, 10)
    bias = np.fromfile(bias_path, dtype="<f4")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["product"]),
            helper.make_node("Add", ["product", "b"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1),
        ],
        "nearest-centroid",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 10])],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx-test")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out)


def bag(table_path, rows, cols, bias_path, length, out):
    table = np.fromfile(table_path, dtype="<f4").reshape(int(rows), int(cols))
    bias = np.fromfile(bias_path, dtype="<f4")
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "ids"], ["rows"], axis=0),
            helper.make_node("ReduceMean", ["rows"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("Add", ["mean", "bias"], ["scores"]),
        ],
        "bag-of-words",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["n", int(length)])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", int(cols)])],
        initializer=[numpy_helper.from_array(table, "table"), numpy_helper.from_array(bias, "bias")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx-test")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out)


def expand(out):
    graph = helper.make_graph(
        [
            helper.make_node("Expand", ["image", "shape"], ["huge"]),
            helper.make_node("ReduceMax", ["huge"], ["scores"], keepdims=0),
        ],
        "hostile-expand",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 28, 28])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 10])],
        initializer=[numpy_helper.from_array(np.array([100000, 10000, 28, 28], dtype=np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnx-test")
    model.ir_version = 7
    onnx.save(model, out)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"check": check, "centroid": centroid, "bag": bag, "expand": expand}[command](*args)
