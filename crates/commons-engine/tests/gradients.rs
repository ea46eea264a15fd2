//! Every layer's gradients against central finite differences, in f64 on the Flex backend,
//! and the activations against their closed forms.

use burn::tensor::{Device, DeviceConfig, FloatDType, Tensor, TensorData};
use commons_engine::model::{self, Activations, DataDims, InputKind, Params, Plan};
use commons_engine::train::cross_entropy;
use commons_recipe::recipe;

/// Make f64 the default float type of the Flex device (once per process, before any tensor).
fn f64_device() -> Device {
    let mut plain = Device::flex();
    let _ = plain.clone().autodiff().configure(DeviceConfig::default().float_dtype(FloatDType::F64));
    // Err means another test of this binary configured it already, which is what we want.
    let _ = plain.configure(DeviceConfig::default().float_dtype(FloatDType::F64));
    assert_eq!(plain.settings().float_dtype, FloatDType::F64, "the Flex device must compute in f64 for these checks");
    plain
}

fn recipe_with_layers(layers: &str, kind: &str, extra_training: &str) -> recipe::LoadedRecipe {
    let text = format!(
        r#"
format_version = 1
name = "gradient-check"
kind = "{kind}"
[data]
format = "idx"
dataset = "none"
{layers}
[training]
loss = "sparse-categorical-crossentropy"
batch_size = 4
epochs = 1
seed = 3
{extra_training}
[training.optimizer]
kind = "sgd"
lr = 0.1
"#
    );
    recipe::parse(&text, "gradient-check.toml").expect("test recipe parses")
}

fn sample_input(input: &InputKind, batch: usize, device: &Device, seed: u64) -> Activations {
    let mut rng = model::SeededRng::new(seed);
    match input {
        InputKind::Features(shape) => {
            let mut dims = vec![batch];
            dims.extend_from_slice(shape);
            let count: usize = dims.iter().product();
            let values: Vec<f64> = (0..count).map(|_| rng.normal()).collect();
            let data = TensorData::new(values, dims);
            match shape.len() {
                1 => Activations::Rank2(Tensor::from_data(data, device)),
                2 => Activations::Rank3(Tensor::from_data(data, device)),
                _ => Activations::Rank4(Tensor::from_data(data, device)),
            }
        }
        InputKind::Tokens { sequence_length, vocab_size } => {
            let ids: Vec<i64> = (0..batch * sequence_length).map(|_| rng.below(*vocab_size) as i64).collect();
            Activations::Tokens(Tensor::from_data(TensorData::new(ids, [batch, *sequence_length]), device))
        }
    }
}

fn loss_of(plan: &Plan, params: &Params, input: Activations, targets: &[u32]) -> Tensor<1> {
    let scores = match model::forward(plan, params, input, None, true) {
        Activations::Rank2(t) => t,
        Activations::Rank3(t) => t.flatten(0, 1),
        _ => panic!("unexpected output rank"),
    };
    cross_entropy(scores, targets)
}

/// Compare autodiff gradients of every parameter with central differences on a sample of
/// entries; returns how many entries were checked.
fn check_gradients(layers: &str, kind: &str, input: InputKind, dims: DataDims, sequence_targets: bool) -> usize {
    let device = f64_device();
    let autodiff = device.clone().autodiff();
    let extra = if sequence_targets { "sequence_length = 5" } else { "" };
    let loaded = recipe_with_layers(layers, kind, extra);
    let plan = Plan::resolve(&loaded, input.clone(), dims).expect("plan resolves");
    let batch = 3;
    let positions = if sequence_targets { batch * 5 } else { batch };
    let mut rng = model::SeededRng::new(11);
    let targets: Vec<u32> = (0..positions).map(|_| rng.below(dims.num_classes) as u32).collect();

    let params = Params::init(&plan, 5, &autodiff);
    // Larger-than-default weights so gates and activations leave their linear regime.
    let named: Vec<_> = params
        .named_tensors(&plan)
        .into_iter()
        .map(|mut t| {
            for v in &mut t.values {
                *v = *v * 3.0 + 0.05;
            }
            t
        })
        .collect();
    let params = Params::from_named(&plan, &named, &autodiff).expect("params rebuild");
    let loss = loss_of(&plan, &params, sample_input(&input, batch, &autodiff, 21), &targets);
    let gradients = loss.backward();
    let mut analytic = Vec::new();
    params.visit(&plan, &mut |name, leaf| {
        analytic.push((name.clone(), leaf.gradient(&gradients).unwrap_or_else(|| panic!("no gradient for {name}"))))
    });

    let eps = 1e-5;
    let mut checked = 0;
    for (tensor_index, tensor) in named.iter().enumerate() {
        let (name, grads) = &analytic[tensor_index];
        assert_eq!(name, &tensor.name);
        let stride = (tensor.values.len() / 7).max(1);
        for entry in (0..tensor.values.len()).step_by(stride) {
            let evaluate = |delta: f64| {
                let mut perturbed = named.clone();
                perturbed[tensor_index].values[entry] += delta;
                let params = Params::from_named(&plan, &perturbed, &device).expect("params rebuild");
                loss_of(&plan, &params, sample_input(&input, batch, &device, 21), &targets).into_scalar::<f64>()
            };
            let numeric = (evaluate(eps) - evaluate(-eps)) / (2.0 * eps);
            let exact = grads[entry];
            let tolerance = 1e-6 + 1e-5 * numeric.abs().max(exact.abs());
            assert!((numeric - exact).abs() <= tolerance, "{name}[{entry}]: autodiff {exact:e} vs finite difference {numeric:e}");
            checked += 1;
        }
        assert!(grads.iter().any(|g| g.abs() > 1e-9), "{name}: gradient is identically zero");
    }
    checked
}

const DENSE_STACK: &str = r#"
[[layers]]
type = "dense"
units = 5
activation = "sigmoid"
[[layers]]
type = "dense"
units = 6
activation = "tanh"
[[layers]]
type = "dense"
units = 4
activation = "relu"
[[layers]]
type = "softmax"
[[layers]]
type = "dense"
units = 3
activation = "softmax"
"#;

#[test]
fn dense_layers_and_activations_match_finite_differences() {
    let checked =
        check_gradients(DENSE_STACK, "classification", InputKind::Features(vec![4]), DataDims { num_classes: 3, vocab_size: 0 }, false);
    assert!(checked >= 40, "only {checked} entries checked");
}

#[test]
fn conv2d_and_max_pool_match_finite_differences() {
    let layers = r#"
[[layers]]
type = "conv2d"
filters = 3
kernel_size = 3
padding = 1
activation = "tanh"
[[layers]]
type = "max-pool2d"
pool_size = 2
[[layers]]
type = "conv2d"
filters = 2
kernel_size = 2
stride = 1
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
units = 3
activation = "softmax"
"#;
    check_gradients(layers, "classification", InputKind::Features(vec![2, 6, 6]), DataDims { num_classes: 3, vocab_size: 0 }, false);
}

fn recurrent_layers(kind: &str, pool: &str) -> String {
    format!(
        r#"
[[layers]]
type = "embedding"
vocab_size = "auto"
dim = 4
[[layers]]
type = "{kind}"
hidden = 5
pool = "{pool}"
[[layers]]
type = "dense"
units = 3
activation = "softmax"
"#
    )
}

#[test]
fn embedding_and_rnn_match_finite_differences() {
    for pool in ["last", "mean", "max"] {
        check_gradients(
            &recurrent_layers("rnn", pool),
            "classification",
            InputKind::Tokens { sequence_length: 5, vocab_size: 7 },
            DataDims { num_classes: 3, vocab_size: 7 },
            false,
        );
    }
}

#[test]
fn lstm_matches_finite_differences() {
    check_gradients(
        &recurrent_layers("lstm", "last"),
        "classification",
        InputKind::Tokens { sequence_length: 5, vocab_size: 7 },
        DataDims { num_classes: 3, vocab_size: 7 },
        false,
    );
    // Per-step outputs, as in the character language model.
    check_gradients(
        &recurrent_layers("lstm", "none").replace("units = 3", "units = \"auto\""),
        "char-language-model",
        InputKind::Tokens { sequence_length: 5, vocab_size: 7 },
        DataDims { num_classes: 7, vocab_size: 7 },
        true,
    );
}

#[test]
fn gru_matches_finite_differences() {
    check_gradients(
        &recurrent_layers("gru", "last"),
        "classification",
        InputKind::Tokens { sequence_length: 5, vocab_size: 7 },
        DataDims { num_classes: 3, vocab_size: 7 },
        false,
    );
}

#[test]
fn cross_entropy_gradient_is_softmax_minus_one_hot() {
    let device = f64_device().autodiff();
    let raw = [[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]];
    let targets = [2u32, 0];
    let scores: Tensor<2> = Tensor::from_data(TensorData::new(raw.concat(), [2, 3]), &device).require_grad();
    let loss = cross_entropy(scores.clone(), &targets);
    let loss_value = loss.clone().into_scalar::<f64>();
    let grads = loss.backward();
    let grad = scores.grad(&grads).expect("gradient").into_data().convert::<f64>().try_into_vec::<f64>().expect("f64");
    let mut expected_loss = 0.0;
    for (r, (row, &target)) in raw.iter().zip(&targets).enumerate() {
        let norm: f64 = row.iter().map(|v: &f64| v.exp()).sum();
        expected_loss -= (row[target as usize].exp() / norm).ln() / 2.0;
        for (c, v) in row.iter().enumerate() {
            let index = r * 3 + c;
            let expected = (v.exp() / norm - if c == target as usize { 1.0 } else { 0.0 }) / 2.0;
            assert!((grad[index] - expected).abs() < 1e-12, "d loss / d score[{index}] = {} expected {expected}", grad[index]);
        }
    }
    assert!((loss_value - expected_loss).abs() < 1e-12, "loss {loss_value} expected {expected_loss}");
}

#[test]
fn activations_match_their_formulas() {
    use burn::tensor::activation::{relu, sigmoid, softmax, tanh};
    let device = f64_device();
    let xs = [-3.5, -1.0, -0.25, 0.0, 0.5, 2.0, 7.0];
    let t = || Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [xs.len()]), &device);
    let get = |t: Tensor<1>| t.into_data().convert::<f64>().try_into_vec::<f64>().expect("f64");
    let close = |name: &str, got: &[f64], want: &[f64]| {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{name}: {g} vs {w}");
        }
    };
    close("sigmoid", &get(sigmoid(t())), &xs.map(|x: f64| 1.0 / (1.0 + (-x).exp())));
    close("tanh", &get(tanh(t())), &xs.map(|x: f64| ((x).exp() - (-x).exp()) / ((x).exp() + (-x).exp())));
    close("relu", &get(relu(t())), &xs.map(|x: f64| x.max(0.0)));
    let total: f64 = xs.iter().map(|x: &f64| x.exp()).sum();
    close("softmax", &get(softmax(t(), 0)), &xs.map(|x: f64| x.exp() / total));
}
