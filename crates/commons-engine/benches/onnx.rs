//! Inference alone, on one thread: the 10,000 MNIST test images through a native model
//! directory (burn) and through its ONNX export (tract), in batches of 256, best of three.
//! `benches/onnx_vs_onnxruntime.sh` runs it beside onnxruntime on the same files.
//!
//! `cargo bench --profile dev -p commons-engine --bench onnx -- NATIVE_DIR ONNX_DIR MNIST_DIR`

use std::path::PathBuf;
use std::time::Instant;

use commons_engine::eval::{EVAL_BATCH, argmax_rows};
use commons_engine::onnx::{ONNX_FILE, OnnxClassifier};

fn best_of_three(mut run: impl FnMut() -> Vec<u32>) -> (f64, Vec<u32>) {
    let mut best = f64::INFINITY;
    let mut classes = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        classes = run();
        best = best.min(started.elapsed().as_secs_f64());
    }
    (best, classes)
}

fn main() {
    let args: Vec<PathBuf> = std::env::args().skip(1).filter(|a| a != "--bench").map(PathBuf::from).collect();
    let [native, exported, mnist] = args.as_slice() else {
        eprintln!("usage: onnx NATIVE_DIR ONNX_DIR MNIST_DIR");
        std::process::exit(2);
    };
    let model = commons_engine::output::read_model_dir(native).expect("native model");
    let prepared = commons_engine::data::prepare(&model.recipe.recipe, mnist, None).expect("MNIST");
    let test = prepared.split("test").expect("test split");
    let plan = commons_engine::model::Plan::resolve(&model.recipe, prepared.input.clone(), prepared.dims).expect("plan");
    let device = commons_engine::batch::default_device();
    let params = commons_engine::output::params_from_model(&model, &plan, &device).expect("weights");
    let commons_recipe::plan::InputKind::Features(shape) = &plan.input else { panic!("an image model") };
    let width: usize = shape.iter().product();

    let (burn_seconds, burn_classes) = commons_engine::batch::with_threads(1, || {
        best_of_three(|| {
            let mut classes = Vec::with_capacity(test.count);
            for start in (0..test.count).step_by(EVAL_BATCH) {
                let end = (start + EVAL_BATCH).min(test.count);
                let mut dims = vec![end - start];
                dims.extend_from_slice(shape);
                let data = burn::tensor::TensorData::new(test.features[start * width..end * width].to_vec(), dims);
                let input = match shape.len() {
                    2 => commons_engine::model::Activations::Rank3(burn::tensor::Tensor::from_data(data, &device)),
                    _ => commons_engine::model::Activations::Rank4(burn::tensor::Tensor::from_data(data, &device)),
                };
                let scores = commons_engine::model::forward(&plan, &params, input, None, true);
                let commons_engine::model::Activations::Rank2(scores) = scores else { panic!("a classifier") };
                classes.extend(argmax_rows(&scores));
            }
            classes
        })
    })
    .expect("thread pool");
    let classifier = OnnxClassifier::load(&exported.join(ONNX_FILE), shape, EVAL_BATCH).expect("the ONNX export");
    let (tract_seconds, tract_classes) = best_of_three(|| {
        let log_probs = classifier.log_probabilities(&test.features, test.count).expect("run");
        log_probs.chunks(classifier.classes()).map(|row| commons_engine::eval::argmax(row) as u32).collect()
    });
    let agree = burn_classes.iter().zip(&tract_classes).filter(|(a, b)| a == b).count();
    println!(
        "{{\"burn_seconds\": {burn_seconds:.4}, \"tract_seconds\": {tract_seconds:.4}, \"images\": {}, \"same_class\": {agree}}}",
        test.count
    );
}
