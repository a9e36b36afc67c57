//! Scalar special functions std lacks. `erf` is fdlibm's s_erf.c (|error| < 1 ulp in f64),
//! needed for exact GELU. `exp_f32` is a branch-free e^x that vectorises (SiLU in the
//! YOLO blocks), where libm's `expf` is a scalar call.

// fdlibm constants are kept digit for digit as published.
#![allow(clippy::excessive_precision)]

pub fn erf(x: f64) -> f64 {
    const ERX: f64 = 8.45062911510467529297e-01;
    const EFX8: f64 = 1.02703333676410069053e+00;
    const PP: [f64; 5] = [
        1.28379167095512558561e-01,
        -3.25042107247001499370e-01,
        -2.84817495755985104766e-02,
        -5.77027029648944159157e-03,
        -2.37630166566501626084e-05,
    ];
    const QQ: [f64; 5] = [
        3.97917223959155352819e-01,
        6.50222499887672944485e-02,
        5.08130628187576562776e-03,
        1.32494738004321644526e-04,
        -3.96022827877536812320e-06,
    ];
    const PA: [f64; 7] = [
        -2.36211856075265944077e-03,
        4.14856118683748331666e-01,
        -3.72207876035701323847e-01,
        3.18346619901161753674e-01,
        -1.10894694282396677476e-01,
        3.54783043256182359371e-02,
        -2.16637559486879084300e-03,
    ];
    const QA: [f64; 6] = [
        1.06420880400844228286e-01,
        5.40397917702171048937e-01,
        7.18286544141962662868e-02,
        1.26171219808761642112e-01,
        1.36370839120290507362e-02,
        1.19844998467991074170e-02,
    ];
    const RA: [f64; 8] = [
        -9.86494403484714822705e-03,
        -6.93858572707181764372e-01,
        -1.05586262253232909814e+01,
        -6.23753324503260060396e+01,
        -1.62396669462573470355e+02,
        -1.84605092906711035994e+02,
        -8.12874355063065934246e+01,
        -9.81432934416914548592e+00,
    ];
    const SA: [f64; 8] = [
        1.96512716674392571292e+01,
        1.37657754143519042600e+02,
        4.34565877475229228821e+02,
        6.45387271733267880336e+02,
        4.29008140027567833386e+02,
        1.08635005541779435134e+02,
        6.57024977031928170135e+00,
        -6.04244152148580987438e-02,
    ];
    const RB: [f64; 7] = [
        -9.86494292470009928597e-03,
        -7.99283237680523006574e-01,
        -1.77579549177547519889e+01,
        -1.60636384855821916062e+02,
        -6.37566443368389627722e+02,
        -1.02509513161107724954e+03,
        -4.83519191608651397019e+02,
    ];
    const SB: [f64; 7] = [
        3.03380607434824582924e+01,
        3.25792512996573918826e+02,
        1.53672958608443695994e+03,
        3.19985821950859553908e+03,
        2.55305040643316442583e+03,
        4.74528541206955367215e+02,
        -2.24409524465858183362e+01,
    ];

    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    if ax < 0.84375 {
        if ax < 3.7252902984e-09 {
            return 0.125 * (8.0 * x + EFX8 * x);
        }
        let z = x * x;
        let r = PP[0] + z * (PP[1] + z * (PP[2] + z * (PP[3] + z * PP[4])));
        let s = 1.0 + z * (QQ[0] + z * (QQ[1] + z * (QQ[2] + z * (QQ[3] + z * QQ[4]))));
        return x + x * (r / s);
    }
    if ax < 1.25 {
        let s = ax - 1.0;
        let p =
            PA[0] + s * (PA[1] + s * (PA[2] + s * (PA[3] + s * (PA[4] + s * (PA[5] + s * PA[6])))));
        let q =
            1.0 + s * (QA[0] + s * (QA[1] + s * (QA[2] + s * (QA[3] + s * (QA[4] + s * QA[5])))));
        return sign * (ERX + p / q);
    }
    if ax >= 6.0 {
        return sign * (1.0 - 1e-300);
    }
    let s = 1.0 / (ax * ax);
    let (r, ss) = if ax < 1.0 / 0.35 {
        (
            RA[0]
                + s * (RA[1]
                    + s * (RA[2]
                        + s * (RA[3] + s * (RA[4] + s * (RA[5] + s * (RA[6] + s * RA[7])))))),
            1.0 + s
                * (SA[0]
                    + s * (SA[1]
                        + s * (SA[2]
                            + s * (SA[3] + s * (SA[4] + s * (SA[5] + s * (SA[6] + s * SA[7]))))))),
        )
    } else {
        (
            RB[0] + s * (RB[1] + s * (RB[2] + s * (RB[3] + s * (RB[4] + s * (RB[5] + s * RB[6]))))),
            1.0 + s
                * (SB[0]
                    + s * (SB[1]
                        + s * (SB[2] + s * (SB[3] + s * (SB[4] + s * (SB[5] + s * SB[6])))))),
        )
    };
    // z = ax with the low 32 bits cleared, as fdlibm does, for an exact z*z.
    let z = f64::from_bits(ax.to_bits() & 0xffff_ffff_0000_0000);
    let e = (-z * z - 0.5625).exp() * ((z - ax) * (z + ax) + r / ss).exp();
    sign * (1.0 - e / ax)
}

#[cfg(test)]
mod tests {
    use super::erf;
    #[test]
    fn erf_matches_known_values() {
        // Values from a 50-digit reference (mpmath).
        let cases = [
            (0.0, 0.0),
            (0.1, 0.1124629160182848922),
            (0.5, 0.5204998778130465377),
            (1.0, 0.8427007929497148693),
            (1.5, 0.9661051464753107271),
            (2.5, 0.9995930479825550411),
            (4.0, 0.9999999845827420997),
            (-0.7, -0.6778011938374184729),
        ];
        for (x, want) in cases {
            assert!(
                (erf(x) - want).abs() < 1e-15,
                "erf({x}) = {} want {want}",
                erf(x)
            );
        }
    }
}

/// e^x for f32 without branches or calls, so loops over it vectorise: e^x = 2^n · e^r with
/// n = round(x·log2 e), |r| ≤ ln2/2 (Cody–Waite split of ln 2), degree-6 Taylor for e^r.
/// Relative error about 1e-7 (≈ 1 ulp). x is clamped to [-87, 88]: below, the result is
/// e^-87 ≈ 1.6e-38 instead of a denormal or 0; above, e^88 instead of +inf (callers use
/// it inside 1/(1 + e^x), where both ends give the right limit).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5·2^23: adding it rounds to an integer
    let t = x.clamp(-87.0, 88.0);
    let n = (t * LOG2E + ROUND) - ROUND;
    let r = (t - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // SAFETY: n is an integer in [-126, 127] (t is clamped), so the conversion is exact;
    // unchecked keeps it one vector instruction (the saturating `as` is scalarised).
    let ni: i32 = unsafe { n.to_int_unchecked() };
    p * f32::from_bits(((ni + 127) as u32) << 23)
}

/// numpy's pairwise summation (`DOUBLE_pairwise_sum`), which `np.sum`/`np.mean` use along a
/// reduced axis: plain below 8 values, 8 interleaved partial sums up to 128, halves above.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &v| s + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        for chunk in a[8..full].chunks_exact(8) {
            for (rj, &v) in r.iter_mut().zip(chunk) {
                *rj += v;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[full..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&a[..n2]) + pairwise_sum(&a[n2..])
    }
}

#[cfg(test)]
mod exp_tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_is_within_two_ulp_of_f64_exp() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            let rel = ((exp_f32(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) > 0.0 && exp_f32(1000.0).is_finite());
    }
}
