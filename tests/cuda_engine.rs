//! The engine on CUDA against the CPU executor (its reference). Single convs (f16 and
//! INT8) must match the CPU on the same f16-rounded inputs and weights up to the f16
//! rounding of the output; a whole YOLOv8-seg graph (every op the engine has), fp32 and
//! INT8, must stay close to the CPU run of the same graph. Skips with a notice where no GPU
//! exists.
mod common;

use common::tiny_seg_graph;
use edgedistill::Tensor;
use edgedistill::backend::cuda::CudaDevice;
use edgedistill::engine::cuda_exec::CudaEngine;
use edgedistill::engine::exec::{run, run_observed};
use edgedistill::engine::quantize::{QuantOptions, calibrated_values, quantize_graph};
use edgedistill::engine::{Act, Graph, Node, Op, ValueInfo, Weight};
use edgedistill::quant::{Collector, Method};
use edgedistill::tensor::Rng;

fn gpu(test: &str) -> Option<&'static CudaDevice> {
    match CudaDevice::get(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("SKIPPED {test}: {e}");
            None
        }
    }
}

/// The conv kernel sets this GPU has: CUDA cores always, tensor cores from sm_80.
fn kernel_sets(dev: &CudaDevice) -> Vec<bool> {
    if dev.cc.0 >= 8 {
        vec![false, true]
    } else {
        vec![false]
    }
}

fn f16r(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

fn randv(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    Tensor::randn([n], 0.0, 1.0, &mut Rng::new(seed))
        .to_vec_f32()
        .unwrap()
        .into_iter()
        .map(|x| x * scale)
        .collect()
}

/// max |a − b| / max(1, |b|) and where.
fn rel_err(a: &[f32], b: &[f32]) -> (f32, usize) {
    assert_eq!(a.len(), b.len());
    let mut worst = (0f32, 0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = (x - y).abs() / y.abs().max(1.0);
        if e > worst.0 || e.is_nan() {
            worst = (if e.is_nan() { f32::INFINITY } else { e }, i);
        }
    }
    worst
}

fn one_conv_graph(
    (n, c, h, w): (usize, usize, usize, usize),
    (o, k, stride, pad): (usize, usize, usize, usize),
    int8: bool,
    seed: u64,
) -> (Graph, Tensor) {
    let kk = c * k * k;
    let wv = f16r(&randv(o * kk, seed, (1.0 / kk as f32).sqrt()));
    let bv = randv(o, seed + 1, 0.1);
    let mut weights = vec![("b".to_string(), Weight::f32(vec![o], bv))];
    let op_common = (
        [stride, stride],
        [pad, pad],
        [1usize, 1usize],
        1usize,
        Act::Silu,
    );
    let (op, inputs) = if int8 {
        let wq: Vec<i8> = (0..o * kk)
            .map(|i| ((i as i64 * 37 + seed as i64) % 255 - 127) as i8)
            .collect();
        let ws: Vec<f32> = (0..o).map(|i| 0.001 + 0.0005 * i as f32).collect();
        weights.push(("w".into(), Weight::i8(vec![o, c, k, k], wq)));
        weights.push(("ws".into(), Weight::f32(vec![o], ws)));
        (
            Op::QConv {
                stride: op_common.0,
                pad: op_common.1,
                dilation: op_common.2,
                groups: 1,
                act: op_common.4,
                in_scale: 0.02,
            },
            vec!["x".into(), "w".into(), "ws".into(), "b".into()],
        )
    } else {
        weights.push(("w".into(), Weight::f32(vec![o, c, k, k], wv)));
        (
            Op::Conv {
                stride: op_common.0,
                pad: op_common.1,
                dilation: op_common.2,
                groups: op_common.3,
                act: op_common.4,
            },
            vec!["x".into(), "w".into(), "b".into()],
        )
    };
    let ho = (h + 2 * pad - k) / stride + 1;
    let wo = (w + 2 * pad - k) / stride + 1;
    let g = Graph {
        input: Some(ValueInfo {
            name: "x".into(),
            shape: vec![1, c, h, w],
        }),
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![1, o, ho, wo],
        }],
        nodes: vec![Node {
            name: "conv".into(),
            op,
            inputs,
            outputs: vec!["y".into()],
        }],
        weights,
    };
    let x = Tensor::from_vec(f16r(&randv(n * c * h * w, seed + 2, 1.0)), [n, c, h, w]).unwrap();
    (g, x)
}

#[test]
fn cuda_convs_match_cpu() {
    let Some(dev) = gpu("cuda_convs_match_cpu") else {
        return;
    };
    // (input n, c, h, w), (out channels, kernel, stride, pad): the first layer, 1×1 and
    // 3×3 with channel counts off the 64-tile, stride 2, a K not a multiple of 4.
    let cases = [
        ((1, 3, 33, 31), (16, 3, 2, 1)),
        ((2, 16, 20, 20), (32, 1, 1, 0)),
        ((1, 64, 17, 19), (70, 3, 1, 1)),
        ((1, 5, 9, 9), (3, 5, 1, 2)),
        ((1, 130, 8, 8), (64, 3, 2, 1)),
    ];
    for (seed, (xs, cs)) in cases.into_iter().enumerate() {
        for int8 in [false, true] {
            let (g, x) = one_conv_graph(xs, cs, int8, 10 * seed as u64);
            let want = run(&g, &g, &x).unwrap().remove(0);
            for tc in kernel_sets(dev) {
                let eng = CudaEngine::with_kernels(dev, &g, &g, xs.0, tc).unwrap();
                let got = eng.run(&x).unwrap().remove(0);
                assert_eq!(got.dims(), want.dims());
                // Equal inputs and weights; only the output's f16 rounding (2^-11
                // relative) and the summation order differ.
                let (e, i) = rel_err(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap());
                eprintln!(
                    "conv {xs:?} {cs:?} int8 {int8} tensor cores {tc}: max rel err {e:.2e} at {i}"
                );
                assert!(
                    e < 2e-3,
                    "conv {xs:?} {cs:?} int8 {int8} tc {tc}: error {e} at {i}"
                );
            }
        }
    }
}

/// Relative errors of the graph's outputs: pred's box rows, its score rows, proto.
fn compare(tag: &str, got: &[Tensor], want: &[Tensor], tol: f32) {
    assert_eq!(got.len(), want.len());
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.dims(), w.dims(), "{tag} output {k}");
        let (e, i) = rel_err(&g.to_vec_f32().unwrap(), &w.to_vec_f32().unwrap());
        eprintln!(
            "{tag}: output {k} {:?} max rel err {e:.2e} at {i}",
            g.dims()
        );
        assert!(
            e < tol,
            "{tag}: output {k} error {e} at {i} (tolerance {tol})"
        );
    }
}

#[test]
fn cuda_yolov8_seg_graph_matches_cpu() {
    let Some(dev) = gpu("cuda_yolov8_seg_graph_matches_cpu") else {
        return;
    };
    let s = 96;
    let g = tiny_seg_graph(s);
    let x = Tensor::from_vec(
        f16r(
            &Tensor::rand([2, 3, s, s], 0.0, 1.0, &mut Rng::new(9))
                .to_vec_f32()
                .unwrap(),
        ),
        [2, 3, s, s],
    )
    .unwrap();
    let want = run(&g, &g, &x).unwrap();
    for tc in kernel_sets(dev) {
        let eng = CudaEngine::with_kernels(dev, &g, &g, 2, tc).unwrap();
        let got = eng.run(&x).unwrap();
        eprintln!(
            "{} launches, {}, tensor cores {tc}",
            eng.launches(),
            eng.graph_status()
        );
        // f16 activations through ~60 layers: a few parts in a thousand.
        compare(&format!("fp16 graph tc {tc}"), &got, &want, 3e-2);
        // A second run replays the same launches on the same buffers: identical.
        let again = eng.run(&x).unwrap();
        for (a, b) in again.iter().zip(&got) {
            assert_eq!(a.to_vec_f32().unwrap(), b.to_vec_f32().unwrap());
        }
    }
    let eng = CudaEngine::new(dev, &g, &g, 2).unwrap();
    // The wrong batch is an error, not a crash.
    let x1 = Tensor::rand([1, 3, s, s], 0.0, 1.0, &mut Rng::new(1));
    assert!(eng.run(&x1).is_err());

    // INT8: calibrate on the CPU, quantize, and run the same INT8 graph on both.
    let wanted: std::collections::HashSet<String> = calibrated_values(&g, &QuantOptions::default())
        .into_iter()
        .collect();
    let mut col = Collector::default();
    for seed in 0..3 {
        let xc = Tensor::rand([2, 3, s, s], 0.0, 1.0, &mut Rng::new(100 + seed));
        run_observed(&g, &g, &xc, &mut |n, t| {
            if wanted.contains(n) {
                t.with_slice(|v: &[f32]| col.observe(n, v))??;
            }
            Ok(())
        })
        .unwrap();
    }
    let cache = col.finish(6, "test", Method::Entropy).unwrap();
    let (q, _) = quantize_graph(
        &g,
        &|v| cache.amax(v, Method::Entropy),
        &QuantOptions::default(),
    )
    .unwrap();
    assert!(q.nodes.iter().any(|n| matches!(n.op, Op::QConv { .. })));
    let want_q = run(&q, &q, &x).unwrap();
    for tc in kernel_sets(dev) {
        let eng_q = CudaEngine::with_kernels(dev, &q, &q, 2, tc).unwrap();
        let got_q = eng_q.run(&x).unwrap();
        // Same INT8 arithmetic; the activations entering each quantizer are f16 on the
        // GPU, so a value near a rounding boundary may land one step away.
        compare(&format!("int8 graph tc {tc}"), &got_q, &want_q, 5e-2);
    }
}

#[test]
fn cuda_engine_file_runs_images() {
    use edgedistill::engine::Engine;
    use edgedistill::engine::format::{EngineMeta, ModelInfo, PostprocessSpec, write_engine};
    let Some(_) = gpu("cuda_engine_file_runs_images") else {
        return;
    };
    let s = 96;
    let g = tiny_seg_graph(s);
    let meta = EngineMeta {
        model: ModelInfo {
            family: "yolov8".into(),
            task: "segment".into(),
            nc: 3,
            nm: 32,
            reg_max: 16,
            config: serde_json::json!({}),
        },
        names: vec!["a".into(), "b".into(), "c".into()],
        category_ids: vec![1, 2, 3],
        postprocess: PostprocessSpec {
            conf: 0.001,
            iou: 0.7,
            max_det: 20,
            mask_threshold: 0.5,
        },
    };
    let dir = std::env::temp_dir().join(format!("ed-cuda-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.engine");
    write_engine(&path, &g, &meta).unwrap();
    let cpu = Engine::load(&path).unwrap();
    let gpu_e = Engine::load(&path).unwrap().on_cuda(0).unwrap();
    assert!(gpu_e.device_name().starts_with("cuda:0"));
    let img = image::RgbImage::from_fn(120, 80, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    // One image, then a batch of two (a new plan), then one again.
    for n in [1usize, 2, 1] {
        let imgs = vec![img.clone(); n];
        let (pc, pg) = (
            cpu.run_batch(&imgs).unwrap(),
            gpu_e.run_batch(&imgs).unwrap(),
        );
        assert_eq!(pg.len(), n);
        for (c, gp) in pc.iter().zip(&pg) {
            eprintln!(
                "batch {n}: cpu {} detections, gpu {}",
                c.boxes.len(),
                gp.boxes.len()
            );
            assert!(!gp.boxes.is_empty());
        }
    }
    let x = Tensor::rand([1, 3, s, s], 0.0, 1.0, &mut Rng::new(4));
    compare(
        "Engine::on_cuda forward",
        &gpu_e.forward(&x).unwrap(),
        &cpu.forward(&x).unwrap(),
        3e-2,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cuda_qconv_rounds_ties_as_cpu() {
    let Some(dev) = gpu("cuda_qconv_rounds_ties_as_cpu") else {
        return;
    };
    // Inputs on exact multiples of in_scale / 2: every odd multiple is a rounding tie
    // (ties go to even), the case the kernels' reciprocal shortcut hands to a division.
    let (mut g, x) = one_conv_graph((1, 8, 12, 12), (16, 3, 1, 1), true, 77);
    if let Op::QConv { in_scale, .. } = &mut g.nodes[0].op {
        *in_scale = 0.25;
    }
    let v: Vec<f32> = (0..x.dims().iter().product::<usize>())
        .map(|i| ((i * 7919) % 81) as f32 * 0.125 - 5.0)
        .collect();
    let x = Tensor::from_vec(v, x.dims().to_vec()).unwrap();
    let want = run(&g, &g, &x).unwrap().remove(0).to_vec_f32().unwrap();
    for tc in kernel_sets(dev) {
        let eng = CudaEngine::with_kernels(dev, &g, &g, 1, tc).unwrap();
        let got = eng.run(&x).unwrap().remove(0).to_vec_f32().unwrap();
        let (e, i) = rel_err(&got, &want);
        eprintln!("ties, tensor cores {tc}: max rel err {e:.2e} at {i}");
        assert!(e < 2e-3, "ties, tc {tc}: error {e} at {i}");
    }
}
