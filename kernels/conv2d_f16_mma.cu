// conv2d_f16_mma.cu — the engine's f16 convolution on tensor cores (sm_80+): the same
// implicit GEMM and contract as conv2d_f16.cu (its CUDA-core twin, kept for older GPUs
// and as a second reference), with the 64 × 64 tile computed by mma.sync m16n8k16
// (f16 × f16 → f32):
//     y[n, o, oy, ox] = act(bias[o] + Σ_{c, ky, kx} w[o, c, ky, kx] · x[n, c, iy, ix])
// CPU reference: backend::cpu::conv::conv2d_forward + SiLU (engine::exec).
//
// Rows m = o (w is [O, K] row-major, K = C·KH·KW), columns p = (n, oy, ox), k = (c, ky, kx).
// Per K step of 32 the block stages A = w[m0.., k0..] as As[m][k] and the gathered im2col
// slice as Bs[p][k] (both k-contiguous, rows padded to 40 halves so the fragment loads
// of a warp hit 32 different banks), then each warp runs 2 (m16) × 4 (n8) × 2 (k16) mma.
// Fragment layouts are PTX's for m16n8k16 .f16 (lane = 4·g + t):
//     A regs: (row g, k 2t..2t+1), (row g+8, same), (row g, k 2t+8..), (row g+8, k 2t+8..)
//     B regs: (k 2t..2t+1, col g), (k 2t+8..2t+9, col g)
//     C:      (row g, cols 2t, 2t+1), (row g+8, cols 2t, 2t+1)
// Split K (k_split > 1) and the output slice (y_ctot, y_coff) as in conv2d_f16.cu; the
// shares go to part[z, m, p] and conv_epilogue_f16 (conv2d_f16.cu) finishes them.
//
// Launch: grid (ceil(P / 64), ceil(O / 64), k_split), block 128 (4 warps; warp w owns
// rows 32·(w & 1) .. +32 and columns 32·(w >> 1) .. +32 of the tile). act: 0 none, 1 SiLU.
//
// No #include: NVRTC compiles this with no headers.

#define BM 64
#define BN 64
#define BK 32
#define LDS 40  // padded row length in halves

__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

__device__ __forceinline__ void mma16816(float* c, const unsigned* a, const unsigned* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

extern "C" __global__ void __launch_bounds__(128)
conv2d_f16_mma(const unsigned short* __restrict__ x, const unsigned short* __restrict__ w,
               const float* __restrict__ bias, unsigned short* __restrict__ y, int N, int C,
               int H, int W, int O, int KH, int KW, int sh, int sw, int ph, int pw, int dh,
               int dw, int Ho, int Wo, int act, int y_ctot, int y_coff, int k_split,
               float* __restrict__ part)
{
    __shared__ __align__(16) unsigned short As[BM][LDS];
    __shared__ __align__(16) unsigned short Bs[BN][LDS];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int wm = (warp & 1) * 32, wn = (warp >> 1) * 32;
    const int m0 = blockIdx.y * BM, p0 = blockIdx.x * BN;
    const int KHW = KH * KW, K = C * KHW, HoWo = Ho * Wo, P = N * HoWo;

    float acc[2][4][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    // Staging roles: A row ar, k half ak (16 halves); B column bn, k half bk.
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
    const unsigned short* xn = x + (long long)img * C * H * W;
    const int iy0 = oy * sh - ph, ix0 = ox * sw - pw;
    const unsigned short* wrow = w + (long long)(m0 + ar) * K;
    const bool arow_ok = m0 + ar < O;

    const int steps = (K + BK - 1) / BK, per = (steps + k_split - 1) / k_split;
    const int kbeg = blockIdx.z * per * BK, kend = min(K, (blockIdx.z + 1) * per * BK);
    // Rows of w start 16-byte aligned when K is a multiple of 8: then this thread's 16
    // weights are two 16-byte loads (kend is a multiple of 8 too).
    const bool wvec = (K & 7) == 0;

    // Register staging, so the next step's global loads are in flight while this step's
    // mma run (one tile in shared memory, the next in registers).
    unsigned ra[8], rb[8];
    auto load = [&](int k0) {
        if (wvec) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int k = k0 + ak + 8 * h;
                uint4 v = make_uint4(0, 0, 0, 0);
                if (arow_ok && k < kend) v = *reinterpret_cast<const uint4*>(wrow + k);
                ra[4 * h] = v.x;
                ra[4 * h + 1] = v.y;
                ra[4 * h + 2] = v.z;
                ra[4 * h + 3] = v.w;
            }
        } else {
#pragma unroll
            for (int i = 0; i < 16; i += 2) {
                const int k = k0 + ak + i;
                const unsigned lo = (arow_ok && k < kend) ? wrow[k] : 0u;
                const unsigned hi = (arow_ok && k + 1 < kend) ? wrow[k + 1] : 0u;
                ra[i / 2] = lo | (hi << 16);
            }
        }
        // Decode k once, then step (c, ky, kx) along the 16 k of this thread.
        const int k = k0 + bk;
        int c = k / KHW, r = k - c * KHW;
        int ky = r / KW, kx = r - ky * KW;
#pragma unroll
        for (int i = 0; i < 16; i++) {
            unsigned v = 0;
            if (p < P && k + i < kend) {
                const int iy = iy0 + ky * dh, ix = ix0 + kx * dw;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                    v = xn[((long long)c * H + iy) * W + ix];
            }
            if (i & 1) rb[i / 2] |= v << 16;
            else rb[i / 2] = v;
            if (++kx == KW) {
                kx = 0;
                if (++ky == KH) {
                    ky = 0;
                    ++c;
                }
            }
        }
    };

    if (kbeg < kend) load(kbeg);
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            *reinterpret_cast<unsigned*>(&As[ar][ak + 2 * i]) = ra[i];
            *reinterpret_cast<unsigned*>(&Bs[bn][bk + 2 * i]) = rb[i];
        }
        __syncthreads();
        if (k0 + BK < kend) load(k0 + BK);
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            unsigned a[2][4], b[4][2];
#pragma unroll
            for (int mt = 0; mt < 2; mt++) {
                const int r = wm + 16 * mt + g;
                a[mt][0] = *reinterpret_cast<const unsigned*>(&As[r][ks + 2 * t]);
                a[mt][1] = *reinterpret_cast<const unsigned*>(&As[r + 8][ks + 2 * t]);
                a[mt][2] = *reinterpret_cast<const unsigned*>(&As[r][ks + 2 * t + 8]);
                a[mt][3] = *reinterpret_cast<const unsigned*>(&As[r + 8][ks + 2 * t + 8]);
            }
#pragma unroll
            for (int nt = 0; nt < 4; nt++) {
                const int cn = wn + 8 * nt + g;
                b[nt][0] = *reinterpret_cast<const unsigned*>(&Bs[cn][ks + 2 * t]);
                b[nt][1] = *reinterpret_cast<const unsigned*>(&Bs[cn][ks + 2 * t + 8]);
            }
#pragma unroll
            for (int mt = 0; mt < 2; mt++)
#pragma unroll
                for (int nt = 0; nt < 4; nt++) mma16816(acc[mt][nt], a[mt], b[nt]);
        }
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
                float v = acc[mt][nt][e];
                if (k_split > 1) {
                    part[((long long)blockIdx.z * O + m) * P + pc] = v;
                    continue;
                }
                v += bias ? bias[m] : 0.0f;
                if (act == 1) v = v / (1.0f + __expf(-v));
                const int nn = pc / HoWo, q = pc - nn * HoWo;
                y[((long long)nn * y_ctot + y_coff + m) * HoWo + q] = f2h(v);
            }
}
