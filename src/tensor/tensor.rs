//! `Tensor`: a cheap handle (Arc) to shared storage + layout + autograd slot.
use super::storage::{CpuStorage, Storage, StorageElement};
use super::{DType, Device, Layout, Shape};
use crate::autograd::Node;
use crate::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct TensorInner {
    id: TensorId,
    storage: Arc<RwLock<Storage>>,
    layout: Layout,
    dtype: DType,
    device: Device,
    /// Leaf parameters that want a gradient. Toggled in place to freeze/unfreeze.
    requires_grad: AtomicBool,
    /// How this tensor was made, when autograd recorded it.
    node: Option<Node>,
    /// Accumulated gradient of a leaf after `backward`.
    grad: Mutex<Option<Tensor>>,
}

/// An n-dimensional array. Cloning is cheap and shares everything (same id, same grad).
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorInner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor({}, {}, {})",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

impl Tensor {
    // ---------------------------------------------------------------- construction
    pub(crate) fn from_parts(
        storage: Arc<RwLock<Storage>>,
        layout: Layout,
        node: Option<Node>,
    ) -> Tensor {
        let (dtype, device) = {
            let s = storage.read().unwrap_or_else(|e| e.into_inner());
            match &*s {
                Storage::Cpu(c) => (c.dtype(), Device::Cpu),
            }
        };
        Tensor(Arc::new(TensorInner {
            id: TensorId::next(),
            storage,
            layout,
            dtype,
            device,
            requires_grad: AtomicBool::new(false),
            node,
            grad: Mutex::new(None),
        }))
    }

    /// A contiguous tensor that owns `storage`.
    pub fn from_cpu_storage(storage: CpuStorage, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if storage.len() != shape.elem_count() {
            return Err(Error::Shape {
                op: "from_storage",
                msg: format!(
                    "{} elements do not fill shape {shape} ({} elements)",
                    storage.len(),
                    shape.elem_count()
                ),
            });
        }
        Ok(Self::from_parts(
            Arc::new(RwLock::new(Storage::Cpu(storage))),
            Layout::contiguous(shape),
            None,
        ))
    }

    /// Build from a vector; its length must match the shape.
    pub fn from_vec<T: StorageElement>(data: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        Self::from_cpu_storage(T::wrap(data), shape)
    }

    pub fn from_slice<T: StorageElement>(data: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Self::from_vec(data.to_vec(), shape)
    }

    /// A 0-d tensor.
    pub fn scalar<T: StorageElement>(v: T) -> Tensor {
        Self::from_parts(
            Arc::new(RwLock::new(Storage::Cpu(T::wrap(vec![v])))),
            Layout::contiguous(Shape::scalar()),
            None,
        )
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        let shape = shape.into();
        let st = CpuStorage::zeros(dtype, shape.elem_count());
        Self::from_parts(
            Arc::new(RwLock::new(Storage::Cpu(st))),
            Layout::contiguous(shape),
            None,
        )
    }

    pub fn full(value: f64, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        fn fill<T: StorageElement>(v: f64, n: usize) -> CpuStorage {
            T::wrap(vec![T::from_f64(v); n])
        }
        let shape = shape.into();
        let n = shape.elem_count();
        let st = match dtype {
            DType::F32 => fill::<f32>(value, n),
            DType::F64 => fill::<f64>(value, n),
            DType::F16 => fill::<half::f16>(value, n),
            DType::BF16 => fill::<half::bf16>(value, n),
            DType::I8 => fill::<i8>(value, n),
            DType::U8 => fill::<u8>(value, n),
            DType::I32 => fill::<i32>(value, n),
            DType::I64 => fill::<i64>(value, n),
        };
        Self::from_parts(
            Arc::new(RwLock::new(Storage::Cpu(st))),
            Layout::contiguous(shape),
            None,
        )
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Self::full(1.0, shape, dtype)
    }
    pub fn zeros_like(&self) -> Tensor {
        Self::zeros(self.shape().clone(), self.dtype())
    }
    pub fn ones_like(&self) -> Tensor {
        Self::ones(self.shape().clone(), self.dtype())
    }
    pub fn full_like(&self, v: f64) -> Tensor {
        Self::full(v, self.shape().clone(), self.dtype())
    }

    /// `start, start+step, ...` while `< end` (`> end` for a negative step), like torch.arange.
    pub fn arange(start: f64, end: f64, step: f64, dtype: DType) -> Result<Tensor> {
        if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
            return Err(Error::msg(format!(
                "arange: bad range start={start} end={end} step={step}"
            )));
        }
        let n = ((end - start) / step).ceil().max(0.0) as usize;
        let v: Vec<f64> = (0..n).map(|i| start + i as f64 * step).collect();
        Tensor::from_vec(v, n)?.to_dtype(dtype)
    }

    // ---------------------------------------------------------------- accessors
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        &self.0.layout.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.0.layout.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.0.layout.shape.rank()
    }
    pub fn dim(&self, d: isize) -> Result<usize> {
        let i = self.shape().resolve("dim", d)?;
        Ok(self.dims()[i])
    }
    pub fn elem_count(&self) -> usize {
        self.0.layout.shape.elem_count()
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn device(&self) -> Device {
        self.0.device
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    pub(crate) fn read_storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn write_storage(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().unwrap_or_else(|e| e.into_inner())
    }
    /// True when nothing else holds this handle or its buffer: writing to it in place is
    /// invisible to any other tensor.
    pub(crate) fn is_sole_owner(&self) -> bool {
        Arc::strong_count(&self.0) == 1 && Arc::strong_count(&self.0.storage) == 1
    }
    /// True when two tensors share one buffer (views of each other).
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    // ---------------------------------------------------------------- autograd slots
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }
    /// Mark a leaf as a trainable parameter (or freeze it). Only leaves may be marked.
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        if on && self.0.node.is_some() {
            return Err(Error::Autograd(
                "only leaf tensors can be marked requires_grad".into(),
            ));
        }
        if on && !self.dtype().is_float() {
            return Err(Error::Autograd(format!(
                "a {} tensor cannot require a gradient",
                self.dtype()
            )));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(())
    }
    /// Builder form of `set_requires_grad(true)` for fresh float leaves.
    pub fn requires_grad_(self) -> Result<Tensor> {
        self.set_requires_grad(true)?;
        Ok(self)
    }
    /// Whether gradients flow through this tensor (a trainable leaf or a recorded result).
    pub fn tracks_grad(&self) -> bool {
        self.requires_grad() || self.0.node.is_some()
    }
    pub(crate) fn node(&self) -> Option<&Node> {
        self.0.node.as_ref()
    }
    /// The gradient accumulated by `backward`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = g;
    }
    /// When this is the last handle, take its node out (for iterative graph teardown).
    pub(crate) fn take_node_if_last(self) -> Option<Node> {
        Arc::try_unwrap(self.0)
            .ok()
            .and_then(|mut inner| inner.node.take())
    }
    /// Same data, cut from the graph.
    pub fn detach(&self) -> Tensor {
        Self::from_parts(self.0.storage.clone(), self.0.layout.clone(), None)
    }
    /// A new tensor over the same storage with another layout (a view), recording `node`.
    pub(crate) fn view_with(&self, layout: Layout, node: Option<Node>) -> Tensor {
        Self::from_parts(self.0.storage.clone(), layout, node)
    }

    // ---------------------------------------------------------------- data access
    /// Calls `f` with the elements in row-major order; zero-copy when contiguous.
    pub fn with_slice<T: StorageElement, R>(&self, f: impl FnOnce(&[T]) -> R) -> Result<R> {
        let st = self.read_storage();
        let Storage::Cpu(cpu) = &*st;
        let Some(s) = T::slice(cpu) else {
            return Err(Error::DType {
                op: "with_slice",
                msg: format!("tensor is {}, asked for {}", self.dtype(), T::DTYPE),
            });
        };
        let l = &self.0.layout;
        if l.is_contiguous() {
            let n = l.shape.elem_count();
            Ok(f(&s[l.offset..l.offset + n]))
        } else {
            let mut v = Vec::with_capacity(l.shape.elem_count());
            l.for_each_run(|start, n| v.extend_from_slice(&s[start..start + n]));
            Ok(f(&v))
        }
    }

    /// Mutable access to the elements of a contiguous tensor, in place (optimizer updates,
    /// running statistics). Every view of the storage sees the change.
    pub fn with_slice_mut<T: StorageElement, R>(&self, f: impl FnOnce(&mut [T]) -> R) -> Result<R> {
        if !self.is_contiguous() {
            return Err(Error::Shape {
                op: "with_slice_mut",
                msg: format!("tensor {} is not contiguous", self.shape()),
            });
        }
        let dt = self.dtype();
        let mut st = self.write_storage();
        let Storage::Cpu(cpu) = &mut *st;
        let Some(s) = T::slice_mut(cpu) else {
            return Err(Error::DType {
                op: "with_slice_mut",
                msg: format!("tensor is {dt}, asked for {}", T::DTYPE),
            });
        };
        let l = &self.0.layout;
        let n = l.shape.elem_count();
        Ok(f(&mut s[l.offset..l.offset + n]))
    }

    /// Copy the values out (the tensor's dtype must be `T`).
    pub fn to_vec<T: StorageElement>(&self) -> Result<Vec<T>> {
        self.with_slice(|s: &[T]| s.to_vec())
    }
    /// Values of any dtype as f64 (for checks and printing).
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.to_dtype(DType::F64)?.to_vec::<f64>()
    }
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        self.to_dtype(DType::F32)?.to_vec::<f32>()
    }
    /// The single value of a one-element tensor, as f64.
    pub fn to_scalar_f64(&self) -> Result<f64> {
        if self.elem_count() != 1 {
            return Err(Error::Shape {
                op: "to_scalar",
                msg: format!(
                    "tensor {} has {} elements, not 1",
                    self.shape(),
                    self.elem_count()
                ),
            });
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// Overwrite the values in place with `src` (same shape; converted to this dtype).
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::Shape {
                op: "assign",
                msg: format!("cannot assign {} into {}", src.shape(), self.shape()),
            });
        }
        let src = src.to_dtype(self.dtype())?.contiguous()?;
        if src.same_storage(self) {
            return Ok(());
        }
        let bytes: Vec<u8> = {
            let st = src.read_storage();
            let Storage::Cpu(c) = &*st;
            let sz = self.dtype().size_in_bytes();
            let o = src.layout().offset * sz;
            c.as_bytes()[o..o + src.elem_count() * sz].to_vec()
        };
        let new = CpuStorage::from_le_bytes(self.dtype(), &bytes);
        let mut st = self.write_storage();
        let Storage::Cpu(dst) = &mut *st;
        let idx = self.layout().storage_indices();
        crate::with_cpu_storage!(dst, d => {
            let s = StorageElement::slice(&new).ok_or_else(|| Error::msg("assign: dtype"))?;
            for (k, &i) in idx.iter().enumerate() {
                d[i] = s[k];
            }
        });
        Ok(())
    }
}
