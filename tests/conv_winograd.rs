//! Winograd F(4×4, 3×3) against a direct f64 convolution: odd and tiny sizes (partial
//! tiles, blocks that span tile rows), padding 0, 1 and 2, channel counts off the kernel's
//! blocking, batches, bias and SiLU; on AVX-512 both the packed kernel and the portable
//! GEMM path.
use edgedistill::backend::cpu::conv::ConvGeom;
use edgedistill::backend::cpu::conv_winograd::{WinogradWeights, applies, forward};
use edgedistill::tensor::Rng;

fn geom(n: usize, c: usize, h: usize, w: usize, o: usize, pad: usize) -> ConvGeom {
    ConvGeom {
        n,
        c,
        h,
        w,
        o,
        kh: 3,
        kw: 3,
        stride: (1, 1),
        pad: (pad, pad),
        dil: (1, 1),
        groups: 1,
        ho: h + 2 * pad - 2,
        wo: w + 2 * pad - 2,
    }
}

fn uniform(len: usize, seed: u64) -> Vec<f32> {
    let mut r = Rng::new(seed);
    (0..len).map(|_| r.uniform() as f32 * 2.0 - 1.0).collect()
}

/// Direct convolution in f64, then bias and SiLU.
fn direct(x: &[f32], w: &[f32], b: &[f32], silu: bool, g: &ConvGeom) -> Vec<f64> {
    let mut y = vec![0f64; g.n * g.o * g.ho * g.wo];
    for n in 0..g.n {
        for o in 0..g.o {
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    let mut s = f64::from(b[o]);
                    for c in 0..g.c {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (oy + ky, ox + kx);
                                if iy < g.pad.0 || ix < g.pad.1 {
                                    continue;
                                }
                                let (iy, ix) = (iy - g.pad.0, ix - g.pad.1);
                                if iy >= g.h || ix >= g.w {
                                    continue;
                                }
                                s += f64::from(x[((n * g.c + c) * g.h + iy) * g.w + ix])
                                    * f64::from(w[((o * g.c + c) * 3 + ky) * 3 + kx]);
                            }
                        }
                    }
                    if silu {
                        s /= 1.0 + (-s).exp();
                    }
                    y[((n * g.o + o) * g.ho + oy) * g.wo + ox] = s;
                }
            }
        }
    }
    y
}

fn check(g: ConvGeom, silu: bool, seed: u64) {
    assert!(applies(&g), "{g:?}");
    let x = uniform(g.n * g.c * g.h * g.w, seed);
    let w = uniform(g.o * g.c * 9, seed + 1);
    let b = uniform(g.o, seed + 2);
    let want = direct(&x, &w, &b, silu, &g);
    let ww = WinogradWeights::new(&w, g.o, g.c);
    let got = forward(&x, &ww, Some(&b), silu, &g);
    assert_eq!(got.len(), want.len());
    // Winograd's rounding error grows with the transforms' scale (up to 5 in, 8 out) and
    // like √(9c) with the sum's length; measured worst ≈ 1.6e-6·√(9c) of the output's rms.
    // A wrong coefficient or a misplaced tile gives errors of the outputs' own size.
    let rms = (want.iter().map(|v| v * v).sum::<f64>() / want.len() as f64).sqrt();
    let tol = 5e-6 * ((9 * g.c) as f64).sqrt();
    let mut worst = 0f64;
    for (i, (&a, &e)) in got.iter().zip(&want).enumerate() {
        let d = (f64::from(a) - e).abs();
        assert!(
            d <= tol * rms.max(e.abs()),
            "{g:?} silu={silu}: element {i}: got {a}, want {e} (rms {rms})"
        );
        worst = worst.max(d);
    }
    if std::env::var("WINO_PRINT").is_ok() {
        eprintln!("{g:?}: worst {worst:.3e}, {:.3e} of rms", worst / rms);
    }
    assert!(worst.is_finite());
}

const CASES: &[(usize, usize, usize, usize, usize, usize)] = &[
    // (n, c, h, w, o, pad)
    (1, 1, 3, 3, 1, 0),
    (1, 3, 5, 7, 5, 1),
    (2, 7, 9, 6, 9, 1),
    (1, 16, 20, 20, 24, 1),
    (1, 5, 13, 37, 17, 1),
    (2, 4, 8, 8, 8, 2),
    (1, 33, 11, 29, 13, 0),
    (1, 64, 40, 40, 64, 1),
];

#[test]
fn winograd_matches_direct_convolution() {
    for (i, &(n, c, h, w, o, pad)) in CASES.iter().enumerate() {
        check(geom(n, c, h, w, o, pad), i % 2 == 1, 10 * i as u64);
    }
}

/// The portable GEMM path (what Arm boards and AVX2-only CPUs run) on the same cases.
#[cfg(target_arch = "x86_64")]
#[test]
fn winograd_portable_gemm_matches_direct_convolution() {
    use edgedistill::backend::cpu::conv_avx512;
    conv_avx512::set_disabled(true);
    let r = std::panic::catch_unwind(|| {
        for (i, &(n, c, h, w, o, pad)) in CASES.iter().enumerate() {
            check(geom(n, c, h, w, o, pad), i % 2 == 0, 10 * i as u64 + 5);
        }
    });
    conv_avx512::set_disabled(false);
    r.unwrap();
}

#[test]
fn winograd_serves_only_3x3_stride_1() {
    let g = geom(1, 4, 8, 8, 4, 1);
    assert!(applies(&g));
    assert!(!applies(&ConvGeom {
        stride: (2, 2),
        ho: 4,
        wo: 4,
        ..g
    }));
    assert!(!applies(&ConvGeom { groups: 2, ..g }));
    assert!(!applies(&ConvGeom {
        dil: (2, 2),
        ho: 4,
        wo: 4,
        ..g
    }));
    assert!(!applies(&ConvGeom {
        kh: 1,
        kw: 1,
        pad: (0, 0),
        ..g
    }));
    // An output size the input does not give (conv_transpose's geometry).
    assert!(!applies(&ConvGeom { ho: 9, ..g }));
}

/// Per-shape timing against the direct kernel (`cargo test --release --test conv_winograd
/// -- --ignored --nocapture`); prints, asserts only agreement.
#[test]
#[ignore]
fn time_yolov8n_shapes() {
    use edgedistill::backend::cpu::conv::conv2d_forward;
    use std::time::Instant;
    // (c, hw, o): YOLOv8n-seg's 3×3 stride-1 convs at 640.
    for &(c, hw, o) in &[
        (64, 160, 64),
        (64, 80, 64),
        (80, 80, 80),
        (16, 160, 16),
        (32, 80, 32),
        (64, 40, 64),
        (128, 20, 128),
        (256, 20, 80),
    ] {
        let g = geom(1, c, hw, hw, o, 1);
        let x = uniform(c * hw * hw, 1);
        let w = uniform(o * c * 9, 2);
        let b = uniform(o, 3);
        let ww = WinogradWeights::new(&w, o, c);
        let med = |f: &dyn Fn() -> Vec<f32>| {
            let mut t: Vec<f64> = (0..15)
                .map(|_| {
                    let s = Instant::now();
                    std::hint::black_box(f());
                    s.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let tw = med(&|| forward(&x, &ww, Some(&b), false, &g));
        // WINO_ONLY=1 skips the direct kernel (to profile Winograd alone).
        if std::env::var("WINO_ONLY").is_ok() {
            println!("c {c:>3} hw {hw:>3} o {o:>3}: winograd {tw:7.3} ms");
            continue;
        }
        let td = med(&|| conv2d_forward(&x, &w, Some(&b), &g));
        let gmac = (c * o * 9 * hw * hw) as f64 / 1e9;
        println!(
            "c {c:>3} hw {hw:>3} o {o:>3}: winograd {tw:7.3} ms  direct {td:7.3} ms  ratio {:.2}  direct {:.0} GFLOP/s",
            tw / td,
            2.0 * gmac / td * 1e3
        );
    }
}
