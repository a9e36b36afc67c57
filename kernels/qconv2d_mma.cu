// qconv2d_mma.cu — the INT8 engine's convolution on tensor cores (sm_80+): the same
// contract as qconv2d_dp4a.cu (its dp4a twin for every arch, and a second reference),
// with the 64 × 64 tile computed by mma.sync m16n8k32 (s8 × s8 → s32):
//     y = act(fma((float)Σ wq·q(x), scale[o], bias[o])),  scale[o] = in_scale · w_scale[o]
// with q(x) = saturate(round_half_even(x / in_scale)) to [−128, 127] already applied.
// CPU reference: backend::cpu::qconv::qconv2d_forward (exact in the accumulator).
//
// Weights are [O, K4] int32 words (4 consecutive s8 k each, zero-padded); the input
// arrives quantized (s8 NCHW, made once per value by quantize_s8 in engine_ops.cu) and is
// gathered per tile. Per K step of 32 the block stages As[m][k] and Bs[p][k]
// as bytes (rows padded to 48 bytes: conflict-free fragment loads), then each warp runs
// 2 (m16) × 4 (n8) mma. Fragment layouts are PTX's for m16n8k32 .s8 (lane = 4·g + t):
//     A regs: (row g, k 4t..4t+3), (row g+8, same), (row g, k 4t+16..), (row g+8, k 4t+16..)
//     B regs: (k 4t..4t+3, col g), (k 4t+16..4t+19, col g)
//     C:      (row g, cols 2t, 2t+1), (row g+8, cols 2t, 2t+1)
// Split K (k_split > 1: exact s32 shares to part[z, m, p], summed by qconv_epilogue in
// qconv2d_dp4a.cu) and the output slice (y_ctot, y_coff) as there.
//
// Launch: grid (ceil(P / 64), ceil(O / 64), k_split), block 128. act: 0 none, 1 SiLU.
//
// No #include: NVRTC compiles this with no headers.

#define BM 64
#define BN 64
#define BK 32
#define LDB 48  // padded row length in bytes

__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
__device__ __forceinline__ void mma16832(int* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

extern "C" __global__ void __launch_bounds__(128)
qconv2d_mma(const signed char* __restrict__ x, const int* __restrict__ w,
            const float* __restrict__ scale, const float* __restrict__ bias,
            unsigned short* __restrict__ y, int N, int C, int H, int W, int O,
            int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo,
            int act, int y_ctot, int y_coff, int k_split, int* __restrict__ part)
{
    __shared__ __align__(16) unsigned char As[BM][LDB];
    __shared__ __align__(16) unsigned char Bs[BN][LDB];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
    const int m0 = blockIdx.y * BM, p0 = blockIdx.x * BN;
    const int KHW = KH * KW, K = C * KHW, K4 = (K + 3) >> 2, HoWo = Ho * Wo, P = N * HoWo;

    int acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0;

    // Staging roles: A row ar, k half ak (4 words = 16 bytes); B column bn, k half bk.
    const int ar = tid >> 1, ak = (tid & 1) * 16;
    const int bn = tid & 63, bk = (tid >> 6) * 16;
    const int p = p0 + bn;
    int img = 0, oy = 0, ox = 0;
    if (p < P) {
        img = p / HoWo;
        const int q = p - img * HoWo;
        oy = q / Wo;
        ox = q - oy * Wo;
    }
    const signed char* xn = x + (long long)img * C * H * W;
    const int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    const int* wrow = w + (long long)(m0 + ar) * K4;
    const bool arow_ok = m0 + ar < O;

    // K in bytes; the split is in whole BK steps over the padded K (4·K4).
    const int KP = 4 * K4;
    const int steps = (KP + BK - 1) / BK, per = (steps + k_split - 1) / k_split;
    const int kbeg = blockIdx.z * per * BK, kend = min(KP, (blockIdx.z + 1) * per * BK);
    // Rows of w are 16-byte aligned when K4 is a multiple of 4: one load for 4 words.
    const bool wvec = (K4 & 3) == 0;

    // Register staging: the next step's loads are in flight while this step's mma run.
    int ra[4], rb[4];
    auto load = [&](int k0) {
        const int kw0 = (k0 + ak) / 4;
        if (wvec) {
            int4 v = make_int4(0, 0, 0, 0);
            if (arow_ok && 4 * kw0 < kend) v = *reinterpret_cast<const int4*>(wrow + kw0);
            ra[0] = v.x;
            ra[1] = v.y;
            ra[2] = v.z;
            ra[3] = v.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; i++)
                ra[i] = (arow_ok && 4 * (kw0 + i) < kend) ? wrow[kw0 + i] : 0;
        }
        const int k = k0 + bk;
        int c = k / KHW, r = k - c * KHW;
        int ky = r / KW, kx = r - ky * KW;
#pragma unroll
        for (int i = 0; i < 16; i += 4) {
            int word = 0;
#pragma unroll
            for (int b = 0; b < 4; b++) {
                if (p < P && k + i + b < K && k + i + b < kend) {
                    const int iy = iy0 + ky * dh, ix = ix0 + kx * dw;
                    if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                        const int q = xn[((long long)c * H + iy) * W + ix];
                        word |= (q & 0xff) << (8 * b);
                    }
                }
                if (++kx == KW) {
                    kx = 0;
                    if (++ky == KH) {
                        ky = 0;
                        ++c;
                    }
                }
            }
            rb[i / 4] = word;
        }
    };

    if (kbeg < kend) load(kbeg);
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            *reinterpret_cast<int*>(&As[ar][ak + 4 * i]) = ra[i];
            *reinterpret_cast<int*>(&Bs[bn][bk + 4 * i]) = rb[i];
        }
        __syncthreads();
        if (k0 + BK < kend) load(k0 + BK);
        unsigned a[2][4], b[4][2];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
            const int r = wm + 16 * mt + g;
            a[mt][0] = *reinterpret_cast<const unsigned*>(&As[r][4 * t]);
            a[mt][1] = *reinterpret_cast<const unsigned*>(&As[r + 8][4 * t]);
            a[mt][2] = *reinterpret_cast<const unsigned*>(&As[r][4 * t + 16]);
            a[mt][3] = *reinterpret_cast<const unsigned*>(&As[r + 8][4 * t + 16]);
        }
#pragma unroll
        for (int nt = 0; nt < 4; nt++) {
            const int cn = wn + 8 * nt + g;
            b[nt][0] = *reinterpret_cast<const unsigned*>(&Bs[cn][4 * t]);
            b[nt][1] = *reinterpret_cast<const unsigned*>(&Bs[cn][4 * t + 16]);
        }
#pragma unroll
        for (int mt = 0; mt < 2; mt++)
#pragma unroll
            for (int nt = 0; nt < 4; nt++) mma16832(acc[mt][nt], a[mt], b[nt]);
        __syncthreads();
    }

#pragma unroll
    for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int nt = 0; nt < 4; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int m = m0 + wm + 16 * mt + g + (e >= 2 ? 8 : 0);
                const int pc = p0 + wn + 8 * nt + 2 * t + (e & 1);
                if (m >= O || pc >= P) continue;
                if (k_split > 1) {
                    part[((long long)blockIdx.z * O + m) * P + pc] = acc[mt][nt][e];
                    continue;
                }
                float v = fmaf((float)acc[mt][nt][e], scale[m], bias ? bias[m] : 0.0f);
                if (act == 1) v = v / (1.0f + __expf(-v));
                const int nn = pc / HoWo, q = pc - nn * HoWo;
                y[((long long)nn * y_ctot + y_coff + m) * HoWo + q] = f2h(v);
            }
}
