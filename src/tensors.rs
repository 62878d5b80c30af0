//! Reading and writing f32 (and u8 mask) tensors in safetensors files, with errors that
//! name the file.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// One named f32 tensor to write.
pub struct Named<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a [f32],
}

/// One named u8 tensor to write (a mask).
pub struct NamedU8<'a> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

/// Serialises tensors plus string metadata to safetensors bytes.
pub fn to_bytes(tensors: &[Named<'_>], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    to_bytes_with_u8(tensors, &[], metadata)
}

/// [`to_bytes`] with u8 tensors besides the f32 ones.
pub fn to_bytes_with_u8(tensors: &[Named<'_>], masks: &[NamedU8<'_>], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(tensors.len() + masks.len());
    let named = tensors.iter().zip(&bytes).map(|(t, b)| (Dtype::F32, &t.name, &t.shape, &b[..]));
    for (dtype, name, shape, b) in named.chain(masks.iter().map(|m| (Dtype::U8, &m.name, &m.shape, m.data))) {
        let v = safetensors::tensor::TensorView::new(dtype, shape.clone(), b).map_err(|e| Error::Internal(format!("tensor '{name}': {e}")))?;
        views.push((name.clone(), v));
    }
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Internal(format!("serialise: {e}")))
}

/// A parsed safetensors file whose tensors are read as f32 with checked shapes.
pub struct Reader<'a> {
    st: SafeTensors<'a>,
    meta: HashMap<String, String>,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    pub fn parse(bytes: &'a [u8], path: &'a Path) -> Result<Self> {
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::format(path, format!("not a valid safetensors file: {e}")))?;
        Ok(Self { st, meta, path })
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.meta
    }

    /// A metadata value that must be present.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::format(self.path, format!("metadata key '{key}' is missing")))
    }

    /// A metadata value parsed with `FromStr`.
    pub fn meta_parse<T: std::str::FromStr>(&self, key: &str) -> Result<T> {
        let s = self.meta(key)?;
        s.parse().map_err(|_| Error::format(self.path, format!("metadata '{key}' = '{s}' is not valid")))
    }

    pub fn names(&self) -> Vec<String> {
        self.st.names().into_iter().map(str::to_string).collect()
    }

    /// Tensor `name` as bytes of dtype U8, with its shape (rank `rank`).
    pub fn u8(&self, name: &str, rank: usize) -> Result<(Vec<usize>, Vec<u8>)> {
        let v = self.st.tensor(name).map_err(|_| Error::format(self.path, format!("tensor '{name}' is missing")))?;
        if v.dtype() != Dtype::U8 {
            return Err(Error::format(self.path, format!("tensor '{name}' is {:?}, expected U8", v.dtype())));
        }
        if v.shape().len() != rank {
            return Err(Error::format(self.path, format!("tensor '{name}' has shape {:?}, expected rank {rank}", v.shape())));
        }
        Ok((v.shape().to_vec(), v.data().to_vec()))
    }

    /// Tensor `name` as f32 values; `shape` entries of `None` accept any size.
    pub fn f32(&self, name: &str, shape: &[Option<usize>]) -> Result<(Vec<usize>, Vec<f32>)> {
        let v = self.st.tensor(name).map_err(|_| Error::format(self.path, format!("tensor '{name}' is missing")))?;
        if v.dtype() != Dtype::F32 {
            return Err(Error::format(self.path, format!("tensor '{name}' is {:?}, expected F32", v.dtype())));
        }
        let got = v.shape().to_vec();
        let ok = got.len() == shape.len() && got.iter().zip(shape).all(|(g, w)| w.is_none_or(|w| w == *g));
        if !ok {
            let want: Vec<String> = shape.iter().map(|w| w.map_or("?".into(), |w| w.to_string())).collect();
            return Err(Error::format(self.path, format!("tensor '{name}' has shape {got:?}, expected [{}]", want.join(", "))));
        }
        let data: Vec<f32> = v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if data.iter().any(|x| !x.is_finite()) {
            return Err(Error::format(self.path, format!("tensor '{name}' holds NaN or infinite values")));
        }
        Ok((got, data))
    }
}
