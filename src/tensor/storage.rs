//! The buffers behind tensors. One typed vector per dtype; views share a storage through
//! `Arc<RwLock<Storage>>` (see tensor.rs).
use super::dtype::{DType, Element};
use half::{bf16, f16};

#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

/// Runs `$body` with `$v` bound to the typed vector, whatever the dtype.
#[macro_export]
macro_rules! with_cpu_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            $crate::tensor::CpuStorage::F32($v) => $body,
            $crate::tensor::CpuStorage::F64($v) => $body,
            $crate::tensor::CpuStorage::F16($v) => $body,
            $crate::tensor::CpuStorage::BF16($v) => $body,
            $crate::tensor::CpuStorage::I8($v) => $body,
            $crate::tensor::CpuStorage::U8($v) => $body,
            $crate::tensor::CpuStorage::I32($v) => $body,
            $crate::tensor::CpuStorage::I64($v) => $body,
        }
    };
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I8(_) => DType::I8,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::I32(_) => DType::I32,
            CpuStorage::I64(_) => DType::I64,
        }
    }
    pub fn len(&self) -> usize {
        with_cpu_storage!(self, v => v.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn as_bytes(&self) -> &[u8] {
        with_cpu_storage!(self, v => bytemuck::cast_slice(v.as_slice()))
    }
    /// A zero-filled buffer of `n` elements.
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F64 => CpuStorage::F64(vec![0.0; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::I8 => CpuStorage::I8(vec![0; n]),
            DType::U8 => CpuStorage::U8(vec![0; n]),
            DType::I32 => CpuStorage::I32(vec![0; n]),
            DType::I64 => CpuStorage::I64(vec![0; n]),
        }
    }
    /// Decode little-endian bytes (as in safetensors) into a typed buffer. The byte slice
    /// need not be aligned. `bytes.len()` must be a multiple of the dtype size.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Self {
        fn read<T: Element>(b: &[u8]) -> Vec<T> {
            let n = b.len() / std::mem::size_of::<T>();
            let mut v: Vec<T> = vec![T::zeroed(); n];
            bytemuck::cast_slice_mut::<T, u8>(&mut v)
                .copy_from_slice(&b[..n * std::mem::size_of::<T>()]);
            v
        }
        match dtype {
            DType::F32 => CpuStorage::F32(read(bytes)),
            DType::F64 => CpuStorage::F64(read(bytes)),
            DType::F16 => CpuStorage::F16(read(bytes)),
            DType::BF16 => CpuStorage::BF16(read(bytes)),
            DType::I8 => CpuStorage::I8(read(bytes)),
            DType::U8 => CpuStorage::U8(read(bytes)),
            DType::I32 => CpuStorage::I32(read(bytes)),
            DType::I64 => CpuStorage::I64(read(bytes)),
        }
    }
}

/// Typed access to a `CpuStorage`.
pub trait StorageElement: Element {
    fn wrap(v: Vec<Self>) -> CpuStorage;
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
}

macro_rules! storage_element {
    ($t:ty, $v:ident) => {
        impl StorageElement for $t {
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$v(v)
            }
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$v(v) => Some(v),
                    _ => None,
                }
            }
        }
    };
}
storage_element!(f32, F32);
storage_element!(f64, F64);
storage_element!(f16, F16);
storage_element!(bf16, BF16);
storage_element!(i8, I8);
storage_element!(u8, U8);
storage_element!(i32, I32);
storage_element!(i64, I64);

/// A tensor's buffer on its device. CUDA storage joins this enum with the CUDA backend.
#[derive(Clone, Debug)]
pub enum Storage {
    Cpu(CpuStorage),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(c) => c.dtype(),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(c) => c.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
