//! Where a tensor's elements sit in its storage: shape, strides (in elements) and offset.
//! Views change the layout and share the storage.
use super::Shape;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: Shape,
    pub strides: Vec<usize>,
    pub offset: usize,
}

impl Layout {
    pub fn contiguous(shape: Shape) -> Self {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    /// Row-major contiguous (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1usize;
        for (&d, &s) in self.shape.dims().iter().zip(&self.strides).rev() {
            if d != 1 && s != expect {
                return false;
            }
            expect *= d;
        }
        true
    }
    /// Visit the elements in row-major order as runs of consecutive storage indices:
    /// `f(start, len)`. The innermost contiguous dims are merged into one run, so a copy of a
    /// transposed or narrowed tensor moves whole rows where it can.
    pub fn for_each_run(&self, mut f: impl FnMut(usize, usize)) {
        let dims = self.shape.dims();
        if self.shape.elem_count() == 0 {
            return;
        }
        // Merge the innermost dims that are contiguous with each other into one run.
        let mut run = 1usize;
        let mut k = dims.len();
        while k > 0 {
            let d = dims[k - 1];
            if d == 1 {
                k -= 1;
                continue;
            }
            if self.strides[k - 1] == run {
                run *= d;
                k -= 1;
            } else {
                break;
            }
        }
        let outer = &dims[..k];
        let ostr = &self.strides[..k];
        let mut idx = vec![0usize; outer.len()];
        let mut pos = self.offset;
        loop {
            f(pos, run);
            // Odometer increment over the outer dims.
            let mut i = outer.len();
            loop {
                if i == 0 {
                    return;
                }
                i -= 1;
                idx[i] += 1;
                pos += ostr[i];
                if idx[i] < outer[i] {
                    break;
                }
                pos -= ostr[i] * outer[i];
                idx[i] = 0;
            }
        }
    }
    /// Storage index of every element in row-major order.
    pub fn storage_indices(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.shape.elem_count());
        self.for_each_run(|s, n| out.extend(s..s + n));
        out
    }
}
