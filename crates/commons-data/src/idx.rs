//! IDX files (MNIST, Fashion-MNIST), raw or gzip-compressed.
//!
//! Layout: magic `00 00 08 ndim` (0x08 = unsigned byte), then `ndim` big-endian u32 dimensions,
//! then the bytes in row-major order. Images are `0x00000803` (count, rows, cols), labels
//! `0x00000801` (count). The file length must match the dimensions exactly; anything else is a
//! corrupt file and is reported with the offending offset.

use std::fs;
use std::io::Read;
use std::path::Path;

use crate::DataError;

pub const IMAGES_MAGIC: u32 = 0x0000_0803;
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// A stack of 8-bit greyscale images, `pixels.len() == count * rows * cols`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    pub pixels: Vec<u8>,
}

impl IdxImages {
    /// The pixels of image `index`, or `None` past the end.
    pub fn image(&self, index: usize) -> Option<&[u8]> {
        let size = self.rows * self.cols;
        self.pixels.get(index * size..(index + 1) * size)
    }
}

pub fn read_images(path: &Path) -> Result<IdxImages, DataError> {
    let mut bytes = read_maybe_gzip(path)?;
    let (dims, header_len) = parse(path, &bytes, IMAGES_MAGIC, "images")?;
    // Drop the header in place rather than copying the (47 MB for MNIST) body.
    bytes.drain(..header_len);
    Ok(IdxImages { count: dims[0], rows: dims[1], cols: dims[2], pixels: bytes })
}

pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut bytes = read_maybe_gzip(path)?;
    let (_, header_len) = parse(path, &bytes, LABELS_MAGIC, "labels")?;
    bytes.drain(..header_len);
    Ok(bytes)
}

/// Write images as raw IDX (the reader's inverse; used to publish derived data sets).
pub fn write_images(path: &Path, images: &IdxImages) -> Result<(), DataError> {
    let expected = images.count * images.rows * images.cols;
    if images.pixels.len() != expected {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            message: format!("{} pixels for {}x{}x{} images", images.pixels.len(), images.count, images.rows, images.cols),
        });
    }
    let mut out = Vec::with_capacity(16 + expected);
    out.extend_from_slice(&IMAGES_MAGIC.to_be_bytes());
    for dim in [images.count, images.rows, images.cols] {
        out.extend_from_slice(&dim_u32(path, dim)?.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    fs::write(path, out).map_err(|e| DataError::io(path, e))
}

pub fn write_labels(path: &Path, labels: &[u8]) -> Result<(), DataError> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&dim_u32(path, labels.len())?.to_be_bytes());
    out.extend_from_slice(labels);
    fs::write(path, out).map_err(|e| DataError::io(path, e))
}

fn dim_u32(path: &Path, dim: usize) -> Result<u32, DataError> {
    u32::try_from(dim).map_err(|_| DataError::Format { path: path.to_path_buf(), message: format!("dimension {dim} exceeds IDX's u32") })
}

fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format { path: path.to_path_buf(), message: format!("bad gzip stream: {e}") })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Validate the header; returns the dimensions and the header's length in bytes.
fn parse(path: &Path, bytes: &[u8], magic: u32, kind: &str) -> Result<(Vec<usize>, usize), DataError> {
    let corrupt = |offset: u64, message: String| DataError::CorruptIdx { path: path.to_path_buf(), offset, message };
    if bytes.len() < 4 {
        return Err(corrupt(0, format!("file is {} bytes, too short for the 4-byte magic number", bytes.len())));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if found != magic {
        return Err(corrupt(0, format!("magic number 0x{found:08x}, expected 0x{magic:08x} for IDX {kind}")));
    }
    let ndim = (magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim;
    if bytes.len() < header_len {
        return Err(corrupt(
            bytes.len() as u64,
            format!("header truncated: {ndim} dimensions need {header_len} bytes, file has {}", bytes.len()),
        ));
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut total: u64 = 1;
    for i in 0..ndim {
        let at = 4 + 4 * i;
        let dim = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if dim == 0 && i > 0 {
            return Err(corrupt(at as u64, format!("dimension {i} is zero")));
        }
        total = total.saturating_mul(u64::from(dim));
        dims.push(dim as usize);
    }
    let expected_len = header_len as u64 + total;
    if bytes.len() as u64 != expected_len {
        return Err(corrupt(
            header_len as u64,
            format!("dimensions {dims:?} need {expected_len} bytes in total, file has {}", bytes.len()),
        ));
    }
    Ok((dims, header_len))
}
