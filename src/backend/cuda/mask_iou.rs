//! Launcher for kernels/mask_iou.cu: the CUDA twin of `backend::cpu::mask_iou::mask_iou`,
//! same inputs, same checks, bit-identical results (both divide the same integer counts in
//! f64). Host buffers are copied in and the matrix copied out.
use super::CudaDevice;
use crate::backend::cpu::mask_iou::{MaskStats, PackedMasks, check_inputs, check_stats};
use crate::{Error, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

const THREADS: u32 = 128;

fn dev_err(e: impl std::fmt::Display) -> Error {
    Error::Device {
        op: "mask_iou",
        msg: e.to_string(),
    }
}

/// IoU of every prediction against every reference on `dev`, row-major `[pred.n, gt.n]`.
pub fn mask_iou(
    dev: &CudaDevice,
    pred: &PackedMasks,
    gt: &PackedMasks,
    gt_crowd: &[bool],
) -> Result<Vec<f64>> {
    check_inputs(pred, gt, gt_crowd)?;
    mask_iou_with_stats(dev, pred, &pred.stats(), gt, &gt.stats(), gt_crowd)
}

/// `mask_iou` with stats computed once by the caller (see the CPU twin).
pub fn mask_iou_with_stats(
    dev: &CudaDevice,
    pred: &PackedMasks,
    ps: &MaskStats,
    gt: &PackedMasks,
    gs: &MaskStats,
    gt_crowd: &[bool],
) -> Result<Vec<f64>> {
    check_inputs(pred, gt, gt_crowd)?;
    let (dp, dg) = (
        DeviceMasks::upload(dev, pred, ps)?,
        DeviceMasks::upload(dev, gt, gs)?,
    );
    mask_iou_device(dev, &dp, &dg, gt_crowd)
}

/// A mask set and its stats resident on the GPU, for comparing the same masks many times
/// (COCOeval) without copying them again.
pub struct DeviceMasks {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub words_per_row: usize,
    data: CudaSlice<u64>,
    bbox: CudaSlice<u32>,
    area: CudaSlice<u64>,
}

impl DeviceMasks {
    pub fn upload(dev: &CudaDevice, m: &PackedMasks, st: &MaskStats) -> Result<Self> {
        m.validate()?;
        check_stats(m, st, "mask")?;
        let s = &dev.stream;
        Ok(DeviceMasks {
            n: m.n,
            h: m.h,
            w: m.w,
            words_per_row: m.words_per_row,
            data: s.clone_htod(&m.data).map_err(dev_err)?,
            bbox: s
                .clone_htod(bytemuck::cast_slice::<[u32; 4], u32>(&st.bbox))
                .map_err(dev_err)?,
            area: s.clone_htod(&st.area).map_err(dev_err)?,
        })
    }
}

/// IoU of device-resident sets; only the crowd flags go up and the matrix comes back.
pub fn mask_iou_device(
    dev: &CudaDevice,
    pred: &DeviceMasks,
    gt: &DeviceMasks,
    gt_crowd: &[bool],
) -> Result<Vec<f64>> {
    if pred.h != gt.h || pred.w != gt.w || gt_crowd.len() != gt.n {
        return Err(Error::Shape {
            op: "mask_iou",
            msg: format!(
                "pred masks [{}, {}, {}], gt masks [{}, {}, {}], {} crowd flags",
                pred.n,
                pred.h,
                pred.w,
                gt.n,
                gt.h,
                gt.w,
                gt_crowd.len()
            ),
        });
    }
    let (np, ng) = (pred.n, gt.n);
    if np == 0 || ng == 0 {
        return Ok(vec![0.0; np * ng]);
    }
    if ng >= 1 << 31
        || (pred.h as u64) * (pred.words_per_row as u64) >= 1 << 32
        || pred.h > i32::MAX as usize
    {
        return Err(Error::Shape {
            op: "mask_iou",
            msg: format!(
                "{ng} gt masks of {}×{} exceed the kernel's limits",
                pred.h, pred.w
            ),
        });
    }
    let s = &dev.stream;
    let crowd: Vec<u8> = gt_crowd.iter().map(|&c| c as u8).collect();
    let d_crowd = s.clone_htod(&crowd).map_err(dev_err)?;
    let mut d_out = s.alloc_zeros::<f64>(np * ng).map_err(dev_err)?;
    let f = dev.function("mask_iou", "mask_iou_f64")?;
    let cfg = LaunchConfig {
        grid_dim: (ng as u32, np.min(65535) as u32, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let (n_pred, n_gt, h, wpr) = (
        np as i32,
        ng as i32,
        pred.h as i32,
        pred.words_per_row as i32,
    );
    let mut launch = s.launch_builder(&f);
    launch
        .arg(&pred.data)
        .arg(&gt.data)
        .arg(&pred.bbox)
        .arg(&gt.bbox)
        .arg(&pred.area)
        .arg(&gt.area)
        .arg(&d_crowd);
    launch
        .arg(&n_pred)
        .arg(&n_gt)
        .arg(&h)
        .arg(&wpr)
        .arg(&mut d_out);
    // SAFETY: argument order and types match mask_iou_f64's signature; the buffers were
    // uploaded from validated masks and stats of matching sizes (DeviceMasks::upload).
    unsafe { launch.launch(cfg) }.map_err(dev_err)?;
    s.clone_dtoh(&d_out).map_err(dev_err)
}
