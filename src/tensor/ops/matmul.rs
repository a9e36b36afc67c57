//! Matrix products: `matmul` with torch.matmul semantics (dot, matrix-vector, matrix, and
//! batched with broadcast batch dims) and `linear`. Everything goes through the strided CPU
//! gemm, so transposed views (the backward's Aᵀ and Bᵀ, a weight's wᵀ) are read in place.
use super::{restore, to_compute};
use crate::autograd::record;
use crate::backend::cpu::gemm::gemm;
use crate::tensor::{Float, Storage, StorageElement};
use crate::{Error, Result, Shape, Tensor, dispatch_float};
use rayon::prelude::*;

/// Per-matrix multiply-adds below which a batch is split across threads, one gemm per
/// task; bigger matrices run one after another and each gemm parallelises itself.
const BATCH_PAR_FLOPS: usize = 1 << 22;

/// Calls `f` with the tensor's whole storage buffer (read in place through its layout).
fn with_storage<T: StorageElement, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let st = t.read_storage();
    let Storage::Cpu(c) = &*st;
    match T::slice(c) {
        Some(s) => Ok(f(s)),
        None => Err(Error::DType {
            op: "matmul",
            msg: format!("storage is {}, expected {}", c.dtype(), T::DTYPE),
        }),
    }
}

/// True when gemm can read the last two dims in place: one of them is unit-stride (row-
/// or column-major, e.g. a transpose view) or a single row/column.
fn gemm_readable(t: &Tensor) -> bool {
    let (l, r) = (t.layout(), t.rank());
    let (rows, cols) = (l.dims()[r - 2], l.dims()[r - 1]);
    l.strides[r - 1] == 1 || l.strides[r - 2] == 1 || rows == 1 || cols == 1
}

/// `t` if gemm can read it in place, else a contiguous copy.
fn readable(t: Tensor) -> Result<Tensor> {
    if gemm_readable(&t) {
        Ok(t)
    } else {
        t.contiguous()
    }
}

fn check_dtypes(op: &'static str, ts: &[&Tensor]) -> Result<()> {
    let dt = ts[0].dtype();
    if !dt.is_float() || ts.iter().any(|t| t.dtype() != dt) {
        let list: Vec<String> = ts
            .iter()
            .map(|t| format!("{} {}", t.dtype(), t.shape()))
            .collect();
        return Err(Error::DType {
            op,
            msg: format!(
                "operands must share one float dtype, got {}",
                list.join(", ")
            ),
        });
    }
    Ok(())
}

/// Batched product of compute-dtype operands of rank ≥ 2 whose shapes were checked:
/// a [..., m, k] · b [..., k, n] → [batch..., m, n] with `batch` the broadcast batch dims.
fn bmm<T: Float + StorageElement>(a: &Tensor, b: &Tensor, batch: &[usize]) -> Result<Vec<T>> {
    let (ra, rb) = (a.rank(), b.rank());
    let (m, k, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 1]);
    let nb: usize = batch.iter().product();
    let mut out = vec![T::ZERO; nb * m * n];
    if out.is_empty() || k == 0 {
        return Ok(out);
    }
    // Storage offset of every batch's matrix; broadcast batch dims step by 0.
    let batch_strides = |t: &Tensor| {
        let (l, r) = (t.layout(), t.rank());
        let lead = batch.len() - (r - 2);
        let mut s = vec![0usize; batch.len()];
        for i in 0..r - 2 {
            if l.dims()[i] != 1 {
                s[lead + i] = l.strides[i];
            }
        }
        s
    };
    let (sa, sb) = (batch_strides(a), batch_strides(b));
    let offs: Vec<(usize, usize)> = (0..nb)
        .map(|i| {
            let (mut rem, mut pa, mut pb) = (i, a.layout().offset, b.layout().offset);
            for d in (0..batch.len()).rev() {
                let j = rem % batch[d];
                rem /= batch[d];
                pa += j * sa[d];
                pb += j * sb[d];
            }
            (pa, pb)
        })
        .collect();
    let (la, lb) = (a.layout(), b.layout());
    let (a_rs, a_cs) = (la.strides[ra - 2], la.strides[ra - 1]);
    let (b_rs, b_cs) = (lb.strides[rb - 2], lb.strides[rb - 1]);
    with_storage(a, |xa: &[T]| {
        with_storage(b, |xb: &[T]| {
            let one = |c: &mut [T], &(pa, pb): &(usize, usize)| {
                gemm(
                    m,
                    n,
                    k,
                    c,
                    n,
                    1,
                    &xa[pa..],
                    a_rs,
                    a_cs,
                    &xb[pb..],
                    b_rs,
                    b_cs,
                    false,
                )
            };
            if nb > 1 && m * n * k < BATCH_PAR_FLOPS && nb * m * n * k >= 1 << 15 {
                out.par_chunks_mut(m * n)
                    .zip(offs.par_iter())
                    .for_each(|(c, o)| one(c, o));
            } else {
                out.chunks_mut(m * n)
                    .zip(&offs)
                    .for_each(|(c, o)| one(c, o));
            }
        })
    })??;
    Ok(out)
}

impl Tensor {
    /// Matrix product with torch.matmul semantics: 1-D·1-D is a dot product (0-d result);
    /// a 1-D left (right) operand is a row (column) vector whose dim is dropped from the
    /// result; operands of rank ≥ 2 are stacks of matrices whose batch dims broadcast.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let (a, b) = (self, rhs);
        check_dtypes("matmul", &[a, b])?;
        let bad = |why: String| Error::Shape {
            op: "matmul",
            msg: format!("cannot multiply {} by {}: {why}", a.shape(), b.shape()),
        };
        if a.rank() == 0 || b.rank() == 0 {
            return Err(bad("0-d operand".into()));
        }
        let ka = a.dims()[a.rank() - 1];
        let kb = b.dims()[b.rank().saturating_sub(2)];
        if ka != kb {
            return Err(bad(format!("inner dims {ka} and {kb} differ")));
        }
        match (a.rank(), b.rank()) {
            (1, 1) => a.unsqueeze(0)?.matmul_nd(&b.unsqueeze(1)?)?.reshape(()),
            (1, _) => a.unsqueeze(0)?.matmul_nd(b)?.squeeze(-2),
            (_, 1) => a.matmul_nd(&b.unsqueeze(1)?)?.squeeze(-1),
            _ => a.matmul_nd(b),
        }
    }

    /// matmul of operands of rank ≥ 2 with matching inner dims (checked by `matmul`).
    fn matmul_nd(&self, b: &Tensor) -> Result<Tensor> {
        let a = self;
        let (ra, rb) = (a.rank(), b.rank());
        let batch = Shape::broadcast(
            "matmul",
            &Shape::from(&a.dims()[..ra - 2]),
            &Shape::from(&b.dims()[..rb - 2]),
        )
        .map_err(|_| Error::Shape {
            op: "matmul",
            msg: format!(
                "cannot multiply {} by {}: batch dims do not broadcast",
                a.shape(),
                b.shape()
            ),
        })?;
        let dtype = a.dtype();
        let ac = readable(to_compute(&a.detach())?)?;
        let bc = readable(to_compute(&b.detach())?)?;
        let mut shape = batch.dims().to_vec();
        shape.extend([a.dims()[ra - 2], b.dims()[rb - 1]]);
        let out = dispatch_float!(ac.dtype(), "matmul", T => {
            Tensor::from_vec(bmm::<T>(&ac, &bc, batch.dims())?, shape)?
        });
        let out = restore(out, dtype)?;
        let (ad, bd) = (a.detach(), b.detach());
        let (ga, gb) = (a.tracks_grad(), b.tracks_grad());
        Ok(record(out, "matmul", &[a, b], move |_, g| {
            // dA = g·Bᵀ, dB = Aᵀ·g, each summed over the batch dims its operand broadcast.
            Ok(vec![
                if ga {
                    Some(g.matmul(&bd.transpose(-1, -2)?)?.sum_to_shape(ad.shape())?)
                } else {
                    None
                },
                if gb {
                    Some(ad.transpose(-1, -2)?.matmul(g)?.sum_to_shape(bd.shape())?)
                } else {
                    None
                },
            ])
        }))
    }

    /// `x · wᵀ + b` for x [..., in], w [out, in], b [out] (PyTorch's nn.Linear). The
    /// leading dims of x are flattened into one gemm; w is read transposed in place and
    /// the bias is the gemm's initial accumulator.
    pub fn linear(&self, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let x = self;
        let mut operands = vec![x, w];
        operands.extend(b);
        check_dtypes("linear", &operands)?;
        if w.rank() != 2 {
            return Err(Error::Shape {
                op: "linear",
                msg: format!("weight must be 2-D [out, in], got {}", w.shape()),
            });
        }
        let (nout, nin) = (w.dims()[0], w.dims()[1]);
        if x.rank() == 0 || x.dims()[x.rank() - 1] != nin {
            return Err(Error::Shape {
                op: "linear",
                msg: format!(
                    "input {} does not end in in_features {nin} of weight {}",
                    x.shape(),
                    w.shape()
                ),
            });
        }
        if let Some(b) = b
            && b.dims() != [nout]
        {
            return Err(Error::Shape {
                op: "linear",
                msg: format!(
                    "bias {} does not match out_features {nout} of weight {}",
                    b.shape(),
                    w.shape()
                ),
            });
        }
        let dtype = x.dtype();
        let lead = &x.dims()[..x.rank() - 1];
        let rows: usize = lead.iter().product();
        let xc = to_compute(&x.detach())?;
        // A 2-D input is read in place; otherwise flatten (a view when contiguous).
        let x2 = if xc.rank() == 2 && gemm_readable(&xc) {
            xc
        } else {
            xc.reshape([rows, nin])?
        };
        let wc = readable(to_compute(&w.detach())?)?;
        let bc = b.map(|b| to_compute(&b.detach())).transpose()?;
        let mut shape = lead.to_vec();
        shape.push(nout);
        let out = dispatch_float!(x2.dtype(), "linear", T => {
            let mut c = vec![T::ZERO; rows * nout];
            if let Some(bc) = &bc
                && nout > 0
            {
                bc.with_slice(|bs: &[T]| c.chunks_mut(nout).for_each(|r| r.copy_from_slice(bs)))?;
            }
            if !c.is_empty() && nin > 0 {
                let (lx, lw) = (x2.layout(), wc.layout());
                with_storage(&x2, |xs: &[T]| {
                    with_storage(&wc, |ws: &[T]| {
                        // wᵀ [in, out] is w's storage with its two strides swapped.
                        gemm(
                            rows, nout, nin, &mut c, nout, 1,
                            &xs[lx.offset..], lx.strides[0], lx.strides[1],
                            &ws[lw.offset..], lw.strides[1], lw.strides[0],
                            bc.is_some(),
                        )
                    })
                })??;
            }
            Tensor::from_vec(c, shape)?
        });
        let out = restore(out, dtype)?;
        let (xd, wd) = (x.detach(), w.detach());
        let (gx, gw, gbias) = (
            x.tracks_grad(),
            w.tracks_grad(),
            b.is_some_and(|b| b.tracks_grad()),
        );
        let has_bias = b.is_some();
        Ok(record(out, "linear", &operands, move |_, g| {
            let g2 = g.reshape([rows, nout])?;
            let mut grads = vec![
                if gx {
                    Some(g2.matmul(&wd)?.reshape(xd.shape().clone())?)
                } else {
                    None
                },
                if gw {
                    Some(g2.t()?.matmul(&xd.reshape([rows, nin])?)?)
                } else {
                    None
                },
            ];
            if has_bias {
                grads.push(if gbias {
                    Some(g2.sum(&[0], false)?)
                } else {
                    None
                });
            }
            Ok(grads)
        }))
    }
}
