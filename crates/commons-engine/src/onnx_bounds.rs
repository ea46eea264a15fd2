//! What an ONNX graph may cost before it is run: a model repository's `model.onnx` is anyone's
//! upload, and the hub compiles and runs it for whoever asks (the inference route, evaluation
//! units on volunteers). A file of a few bytes can describe a graph that allocates without bound
//! (`Expand` to a shape of 10^10, a broadcast of two constants) or never ends (`Loop`), so the
//! graph is checked twice:
//!
//! - [`check_graph`], before tract reads it: only the operators of classifiers (no control flow,
//!   nothing random), every stored tensor within [`MAX_FOLDED_ELEMENTS`], and every value tract
//!   works out while reading the graph (constants, shapes, and what is computed from them alone;
//!   tract evaluates those as it reads) bounded the same way, with no operator whose output size
//!   is set by the values of its inputs (`Expand`, `Tile`, `Pad`, `Resize`) among them.
//! - [`activation_bytes`], on the typed graph for the input shape asked for: every tensor of a run
//!   must have a known shape (none may depend on the data), and their sum — an upper bound on
//!   what one run holds at once — must stay within what the caller allows.

use std::collections::HashMap;

use tract_onnx::pb;
use tract_onnx::prelude::TypedModel;
use tract_onnx::tract_core::ops::konst::Const;

use crate::error::EngineError;

/// Largest tensor stored in the graph or worked out while reading it, in elements (256 MiB of
/// `f32`; a model file is itself bounded by its repository's limits).
pub const MAX_FOLDED_ELEMENTS: u128 = 1 << 26;

/// How large an operator's output may be, against its inputs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    /// As many elements as its largest input, or fewer.
    NoLarger,
    /// At most the product of its inputs' (broadcasting, products, gathers, concatenations).
    Product,
    /// Set by the values of an input (`Expand`, `Tile`, `Pad`, `Resize`): bounded on the data's
    /// path by the typed graph's shapes, refused where tract would compute it while reading.
    SizedByValues,
    /// A constant: the tensor it holds.
    Stored,
    /// An input's shape: one number per axis.
    Shape,
}

/// Operators a classifier's graph may use — what `export` writes and what PyTorch's and
/// TensorFlow's exports of dense, convolutional and attention classifiers use — and how large
/// each one's output may be.
const OPERATORS: &[(&str, Size)] = &[
    ("Abs", Size::NoLarger),
    ("Add", Size::Product),
    ("And", Size::Product),
    ("ArgMax", Size::NoLarger),
    ("AveragePool", Size::Product),
    ("BatchNormalization", Size::Product),
    ("Cast", Size::NoLarger),
    ("Ceil", Size::NoLarger),
    ("Clip", Size::NoLarger),
    ("Concat", Size::Product),
    ("Constant", Size::Stored),
    ("Conv", Size::Product),
    ("Div", Size::Product),
    ("Dropout", Size::NoLarger),
    ("Elu", Size::NoLarger),
    ("Equal", Size::Product),
    ("Erf", Size::NoLarger),
    ("Exp", Size::NoLarger),
    ("Expand", Size::SizedByValues),
    ("Flatten", Size::NoLarger),
    ("Floor", Size::NoLarger),
    ("Gather", Size::Product),
    ("Gelu", Size::NoLarger),
    ("Gemm", Size::Product),
    ("GlobalAveragePool", Size::NoLarger),
    ("GlobalMaxPool", Size::NoLarger),
    ("Greater", Size::Product),
    ("HardSigmoid", Size::NoLarger),
    ("HardSwish", Size::NoLarger),
    ("Identity", Size::NoLarger),
    ("InstanceNormalization", Size::Product),
    ("LayerNormalization", Size::Product),
    ("LeakyRelu", Size::NoLarger),
    ("Less", Size::Product),
    ("Log", Size::NoLarger),
    ("LogSoftmax", Size::NoLarger),
    ("MatMul", Size::Product),
    ("Max", Size::Product),
    ("MaxPool", Size::Product),
    ("Mean", Size::Product),
    ("Min", Size::Product),
    ("Mul", Size::Product),
    ("Neg", Size::NoLarger),
    ("Not", Size::NoLarger),
    ("Or", Size::Product),
    ("Pad", Size::SizedByValues),
    ("Pow", Size::Product),
    ("PRelu", Size::Product),
    ("Reciprocal", Size::NoLarger),
    ("ReduceMax", Size::NoLarger),
    ("ReduceMean", Size::NoLarger),
    ("ReduceMin", Size::NoLarger),
    ("ReduceSum", Size::NoLarger),
    ("Relu", Size::NoLarger),
    ("Reshape", Size::NoLarger),
    ("Resize", Size::SizedByValues),
    ("Selu", Size::NoLarger),
    ("Shape", Size::Shape),
    ("Sigmoid", Size::NoLarger),
    ("Sign", Size::NoLarger),
    ("Slice", Size::NoLarger),
    ("Softmax", Size::NoLarger),
    ("Softplus", Size::NoLarger),
    ("Split", Size::NoLarger),
    ("Sqrt", Size::NoLarger),
    ("Squeeze", Size::NoLarger),
    ("Sub", Size::Product),
    ("Sum", Size::Product),
    ("Tanh", Size::NoLarger),
    ("Tile", Size::SizedByValues),
    ("Transpose", Size::NoLarger),
    ("Unsqueeze", Size::NoLarger),
    ("Where", Size::Product),
];

/// Elements of a tensor stored in the graph, an empty axis counted as one: a tensor of
/// `[10^6, 0]` holds nothing, but what is computed from it (a product with one of `[0, 10^6]`)
/// may have 10^12 elements. An error for a negative dimension.
fn stored_elements(tensor: &pb::TensorProto) -> Result<u128, EngineError> {
    tensor.dims.iter().try_fold(1u128, |n, &d| {
        u128::try_from(d)
            .map(|d| n.saturating_mul(d.max(1)))
            .map_err(|_| EngineError::Onnx(format!("tensor {:?} has a negative dimension", tensor.name)))
    })
}

/// Checks `graph` before tract reads it (see the module's text).
pub fn check_graph(graph: &pb::GraphProto) -> Result<(), EngineError> {
    // Upper bounds, in elements, of the values known while reading: stored tensors, constants,
    // shapes, and what is computed from those alone. The data's values are absent.
    let mut known: HashMap<&str, u128> = HashMap::new();
    for tensor in &graph.initializer {
        let elements = stored_elements(tensor)?;
        if elements > MAX_FOLDED_ELEMENTS {
            return Err(EngineError::Onnx(format!(
                "tensor {:?} has {elements} elements; at most {MAX_FOLDED_ELEMENTS} are read",
                tensor.name
            )));
        }
        known.insert(&tensor.name, elements);
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(EngineError::Onnx("sparse initializers are not read".into()));
    }
    // ONNX lists nodes in an order where each one's inputs come first.
    for node in &graph.node {
        let op = node.op_type.as_str();
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(EngineError::Onnx(format!("operator {op} of domain {:?} is not run here", node.domain)));
        }
        let Some(&(_, size)) = OPERATORS.iter().find(|(name, _)| *name == op) else {
            return Err(EngineError::Onnx(format!(
                "operator {op} (node {:?}) is not run here: a classifier's graph uses arithmetic, activations, \
                 convolutions, pooling, normalisation and shape operators, without control flow",
                node.name
            )));
        };
        let inputs: Vec<&str> = node.input.iter().map(String::as_str).filter(|name| !name.is_empty()).collect();
        let bound = match size {
            Size::Stored => {
                let mut elements = 1u128;
                for attribute in &node.attribute {
                    if let Some(tensor) = &attribute.t {
                        elements = stored_elements(tensor)?;
                    }
                    if attribute.sparse_tensor.is_some() {
                        return Err(EngineError::Onnx("sparse constants are not read".into()));
                    }
                    elements = elements.max(attribute.ints.len() as u128).max(attribute.floats.len() as u128);
                }
                Some(elements)
            }
            // A shape is known once the input's is: one number per axis.
            Size::Shape => Some(64),
            _ if inputs.iter().all(|name| known.contains_key(name)) => {
                if size == Size::SizedByValues {
                    return Err(EngineError::Onnx(format!(
                        "node {:?} computes {op} of constants, whose size is set by values: fold it when exporting",
                        node.name
                    )));
                }
                let sizes = inputs.iter().filter_map(|name| known.get(name).copied());
                Some(if size == Size::NoLarger {
                    sizes.max().unwrap_or(1)
                } else {
                    // Broadcasting, products and gathers: at most the product of the inputs.
                    sizes.fold(1u128, u128::saturating_mul)
                })
            }
            _ => None,
        };
        if let Some(elements) = bound {
            if elements > MAX_FOLDED_ELEMENTS {
                return Err(EngineError::Onnx(format!(
                    "node {:?} ({op}) may compute {elements} elements from constants while the graph is read; \
                     at most {MAX_FOLDED_ELEMENTS}",
                    node.name
                )));
            }
            for output in node.output.iter().filter(|name| !name.is_empty()) {
                known.insert(output, elements);
            }
        }
    }
    Ok(())
}

/// Bytes of every tensor one run of `model` computes (its stored constants aside), an upper
/// bound on what the run holds at once; an error when a shape depends on the data.
pub fn activation_bytes(model: &TypedModel) -> Result<u128, EngineError> {
    let mut total = 0u128;
    for node in model.nodes() {
        if node.op_as::<Const>().is_some() {
            continue;
        }
        for output in &node.outputs {
            let fact = &output.fact;
            let shape = fact.shape.as_concrete().ok_or_else(|| {
                EngineError::Onnx(format!("node {:?} ({}) gives a tensor whose shape depends on the data", node.name, node.op.name()))
            })?;
            let elements = shape.iter().fold(1u128, |n, &d| n.saturating_mul(d as u128));
            total = total.saturating_add(elements.saturating_mul(fact.datum_type.size_of() as u128));
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::onnx::{OnnxClassifier, value_info};

    fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            name: output.into(),
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn int64s(name: &str, values: &[i64]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: pb::tensor_proto::DataType::Int64 as i32,
            int64_data: values.to_vec(),
            ..Default::default()
        }
    }

    fn floats(name: &str, dims: &[i64]) -> pb::TensorProto {
        let n: i64 = dims.iter().product();
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: vec![0.5; n as usize],
            ..Default::default()
        }
    }

    /// A model reading `[batch, inputs]` and answering `[batch, 10]` through `nodes`.
    fn model(inputs: usize, nodes: Vec<pb::NodeProto>, initializer: Vec<pb::TensorProto>) -> Vec<u8> {
        let graph = pb::GraphProto {
            name: "hostile".into(),
            node: nodes,
            initializer,
            input: vec![value_info("input", &[inputs])],
            output: vec![value_info("logits", &[10])],
            ..Default::default()
        };
        pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(graph),
            ..Default::default()
        }
        .encode_to_vec()
    }

    fn refusal(bytes: &[u8], batch: usize) -> String {
        match OnnxClassifier::from_bytes(bytes, &[10], batch) {
            Ok(_) => panic!("the graph was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn control_flow_and_unknown_operators_are_refused_before_the_graph_is_read() {
        let looping = model(10, vec![node("Loop", &["", "", "input"], "logits")], vec![]);
        let message = refusal(&looping, 1);
        assert!(message.contains("operator Loop") && message.contains("without control flow"), "{message}");
        let mut custom = node("Relu", &["input"], "logits");
        custom.domain = "com.example".into();
        assert!(refusal(&model(10, vec![custom], vec![]), 1).contains("domain"));
    }

    #[test]
    fn constants_that_would_be_multiplied_out_while_the_graph_is_read_are_refused() {
        // Two constants of 20,000 numbers each (160 kB in the file), broadcast into 4 × 10^8
        // (1.6 GB) by tract as it reads the graph, were the check not there.
        let nodes = vec![node("Mul", &["row", "column"], "big"), node("Add", &["input", "big"], "logits")];
        let message = refusal(&model(10, nodes, vec![floats("row", &[1, 20_000]), floats("column", &[20_000, 1])]), 1);
        assert!(message.contains("from constants while the graph is read"), "{message}");
        // An Expand of constants to a shape of 10^10, the same.
        let nodes = vec![node("Expand", &["one", "shape"], "big"), node("Add", &["input", "big"], "logits")];
        let message = refusal(&model(10, nodes, vec![floats("one", &[1]), int64s("shape", &[100_000, 100_000])]), 1);
        assert!(message.contains("whose size is set by values"), "{message}");
        // Two empty tensors whose product would not be: [10^6, 0] × [0, 10^6].
        let mut wide = floats("wide", &[0]);
        wide.dims = vec![1_000_000, 0];
        let mut tall = floats("tall", &[0]);
        tall.dims = vec![0, 1_000_000];
        let nodes = vec![node("MatMul", &["wide", "tall"], "big"), node("Add", &["input", "big"], "logits")];
        let message = refusal(&model(10, nodes, vec![wide, tall]), 1);
        assert!(message.contains("from constants while the graph is read"), "{message}");
        // A stored tensor whose dimensions claim more than is read.
        let message = refusal(&model(10, vec![node("Add", &["input", "w"], "logits")], vec![floats("w", &[0])]).clone(), 1);
        assert!(!message.is_empty());
        let mut claimed = floats("w", &[1]);
        claimed.dims = vec![1 << 20, 1 << 20];
        let message = refusal(&model(10, vec![node("Add", &["input", "w"], "logits")], vec![claimed]), 1);
        assert!(message.contains("at most") && message.contains("are read"), "{message}");
    }

    #[test]
    fn a_graph_whose_run_would_take_gigabytes_is_refused_and_a_large_batch_is_cut_to_fit() {
        // Expand on the data's path: [1, 10] to [100000, 10000, 10], 40 GB, refused from the
        // typed graph's shapes without running it.
        let nodes = vec![node("Expand", &["input", "shape"], "big"), node("ReduceMax", &["big"], "logits")];
        let message = refusal(&model(10, nodes, vec![int64s("shape", &[100_000, 10_000, 10])]), 1);
        assert!(message.contains("computes tensors of") && message.contains("at most"), "{message}");

        // Each input tiled to 4 × 10^6 numbers (16 MB): 256 inputs at once would take 4 GB, so
        // the batch is cut; the sums it answers are still right.
        let nodes = vec![
            node("Tile", &["input", "repeats"], "tiled"),
            node("Reshape", &["tiled", "shape"], "copies"),
            node("ReduceSum", &["copies", "axes"], "logits"),
        ];
        let mut sum = nodes;
        sum[2].attribute.push(pb::AttributeProto {
            name: "keepdims".into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 0,
            ..Default::default()
        });
        let tiled = model(10, sum, vec![int64s("repeats", &[1, 400_000]), int64s("shape", &[-1, 400_000, 10]), int64s("axes", &[1])]);
        let classifier = OnnxClassifier::from_bytes(&tiled, &[10], 256).expect("a graph that fits in a smaller batch");
        assert!(classifier.batch() < 256 && classifier.batch() >= 16, "batch {}", classifier.batch());
        // Its answers are those of the graph run one input at a time.
        let one_by_one = OnnxClassifier::from_bytes(&tiled, &[10], 1).expect("one input at a time");
        let rows: Vec<f32> = (0..30).map(|i| (i % 7) as f32 / 1e5).collect();
        let (cut, single) =
            (classifier.log_probabilities(&rows, 3).expect("a run"), one_by_one.log_probabilities(&rows, 3).expect("a run"));
        assert_eq!(cut.len(), 30);
        for (a, b) in cut.iter().zip(&single) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(cut[6] > cut[0], "the scores follow the inputs: {cut:?}");
    }
}
