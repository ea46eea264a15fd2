//! Tensors to and from safetensors files (F32, little-endian, in name order): the model file
//! and the checkpoints.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::EngineError;
use crate::model::NamedTensor;

/// Serialise named tensors as safetensors (f32, little-endian), in name order.
pub fn safetensors_bytes(tensors: &[NamedTensor]) -> Result<Vec<u8>, EngineError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| (t.name.clone(), t.shape.clone(), t.values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect()))
        .collect();
    let mut views = BTreeMap::new();
    for (name, shape, data) in &bytes {
        let view =
            TensorView::new(Dtype::F32, shape.clone(), data).map_err(|e| EngineError::Data(format!("safetensors view {name}: {e}")))?;
        views.insert(name.clone(), view);
    }
    safetensors::serialize(views, None).map_err(|e| EngineError::Data(format!("safetensors: {e}")))
}

pub fn read_safetensors(path: &Path) -> Result<Vec<NamedTensor>, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(format!("reading {}", path.display()), e))?;
    tensors_from_bytes(&bytes, path)
}

/// The tensors of a safetensors file's bytes; `path` names where they came from in errors.
pub fn tensors_from_bytes(bytes: &[u8], path: &Path) -> Result<Vec<NamedTensor>, EngineError> {
    let model_dir_error = |reason: String| EngineError::ModelDir { dir: path.to_path_buf(), reason };
    let tensors = safetensors::SafeTensors::deserialize(bytes).map_err(|e| model_dir_error(format!("not a safetensors file: {e}")))?;
    let mut out = Vec::new();
    for (name, view) in tensors.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(model_dir_error(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
        }
        let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64).collect();
        out.push(NamedTensor { name, shape: view.shape().to_vec(), values });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
