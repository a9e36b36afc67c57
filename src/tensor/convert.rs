//! Dtype conversion and contiguous copies.
use super::storage::{CpuStorage, Storage, StorageElement};
use super::{DType, Element, Layout, Tensor};
use crate::Result;
use crate::autograd::record;
use half::{bf16, f16};

fn convert_slice<S: Element, D: StorageElement>(s: &[S]) -> CpuStorage {
    D::wrap(s.iter().map(|&x| D::from_f64(x.to_f64())).collect())
}

fn convert_to<S: Element>(s: &[S], to: DType) -> CpuStorage {
    match to {
        DType::F32 => convert_slice::<S, f32>(s),
        DType::F64 => convert_slice::<S, f64>(s),
        DType::F16 => convert_slice::<S, f16>(s),
        DType::BF16 => convert_slice::<S, bf16>(s),
        DType::I8 => convert_slice::<S, i8>(s),
        DType::U8 => convert_slice::<S, u8>(s),
        DType::I32 => convert_slice::<S, i32>(s),
        DType::I64 => convert_slice::<S, i64>(s),
    }
}

impl Tensor {
    /// Convert to `dtype`. Floats round to nearest even (f32→f16/bf16 too); float→integer
    /// rounds half to even and saturates. Differentiable between float dtypes.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let out = {
            let st = self.read_storage();
            let Storage::Cpu(c) = &*st;
            let l = self.layout();
            let idx_contig = l.is_contiguous();
            let n = self.elem_count();
            let conv = crate::with_cpu_storage!(c, v => {
                if idx_contig {
                    convert_to(&v[l.offset..l.offset + n], dtype)
                } else {
                    let mut tmp = Vec::with_capacity(n);
                    l.for_each_run(|s, k| tmp.extend_from_slice(&v[s..s + k]));
                    convert_to(&tmp, dtype)
                }
            });
            Tensor::from_cpu_storage(conv, self.shape().clone())?
        };
        if !(self.dtype().is_float() && dtype.is_float()) {
            return Ok(out);
        }
        let from = self.dtype();
        Ok(record(out, "to_dtype", &[self], move |_, g| {
            Ok(vec![Some(g.to_dtype(from)?)])
        }))
    }

    /// A row-major contiguous tensor with the same values (no copy when already so).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = {
            let st = self.read_storage();
            let Storage::Cpu(c) = &*st;
            let l = self.layout();
            let conv = crate::with_cpu_storage!(c, v => {
                let mut tmp = Vec::with_capacity(self.elem_count());
                l.for_each_run(|s, k| tmp.extend_from_slice(&v[s..s + k]));
                StorageElement::wrap(tmp)
            });
            Tensor::from_parts(
                std::sync::Arc::new(std::sync::RwLock::new(Storage::Cpu(conv))),
                Layout::contiguous(self.shape().clone()),
                None,
            )
        };
        Ok(record(out, "contiguous", &[self], |_, g| {
            Ok(vec![Some(g.clone())])
        }))
    }

    /// A copy that owns fresh storage (even when already contiguous).
    pub fn deep_clone(&self) -> Result<Tensor> {
        let st = self.read_storage();
        let Storage::Cpu(c) = &*st;
        let l = self.layout();
        let conv: CpuStorage = crate::with_cpu_storage!(c, v => {
            let mut tmp = Vec::with_capacity(self.elem_count());
            l.for_each_run(|s, k| tmp.extend_from_slice(&v[s..s + k]));
            StorageElement::wrap(tmp)
        });
        Tensor::from_cpu_storage(conv, self.shape().clone())
    }
}
