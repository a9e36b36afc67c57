// conv2d_f16.cu — the engine's convolution on CUDA: implicit GEMM, f16 activations and
// weights, f32 accumulation, fused bias and activation:
//     y[n, o, oy, ox] = act(bias[o] + Σ_{c, ky, kx} w[o, c, ky, kx] · x[n, c, iy, ix])
//     iy = oy·sh − ph + ky·dh,  ix = ox·sw − pw + kx·dw  (zero outside the input)
// CPU reference: backend::cpu::conv::conv2d_forward followed by SiLU (engine::exec), which
// this matches up to f16 rounding of the output (inputs are already f16).
//
// As a GEMM: rows m = output channel o (M = O), columns p = (n, oy, ox) (P = N·Ho·Wo),
// reduction k = (c, ky, kx) (K = C·KH·KW, w is [O, K] row-major). The im2col matrix is
// never formed: each block gathers its BK × BN slice of it straight from x.
// groups must be 1 (the launcher checks). The output may be a channel slice of a bigger
// tensor (y_ctot channels in all, this conv's channels start at y_coff), so a conv can
// write straight into a concat.
//
// Split K (layers too small to fill the GPU, e.g. 256 channels at 20 × 20): with
// k_split > 1, block z of the grid sums only its share of the k steps and stores the raw
// sums to part[z, m, p] (f32, no bias or activation); conv_epilogue_f16 then adds the
// shares in order z = 0, 1, … (deterministic, unlike atomics) and applies bias and act.
//
// Launch: grid (ceil(P / 64), ceil(O / 64), k_split), block 256, no dynamic shared memory. Thread
// (tx, ty) = (tid % 16, tid / 16) owns rows 4·ty .. 4·ty+3 and columns 4·tx .. 4·tx+3 of
// the 64 × 64 tile, read from shared memory as float4.
// act: 0 none, 1 SiLU.
//
// No #include: NVRTC compiles this with no headers.

#define BM 64
#define BN 64
#define BK 16

__device__ __forceinline__ float h2f(unsigned short h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}
__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

extern "C" __global__ void __launch_bounds__(256)
conv2d_f16(const unsigned short* __restrict__ x, const unsigned short* __restrict__ w,
           const float* __restrict__ bias, unsigned short* __restrict__ y, int N, int C, int H,
           int W, int O, int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw, int Ho,
           int Wo, int act, int y_ctot, int y_coff, int k_split, float* __restrict__ part)
{
    // Transposed tiles ([k][m], [k][p]) so a thread's 4 rows / 4 columns are one float4.
    __shared__ __align__(16) float ws[BK][BM + 4];
    __shared__ __align__(16) float xs[BK][BN + 4];

    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * BM, p0 = blockIdx.x * BN;
    const int KHW = KH * KW, K = C * KHW, HoWo = Ho * Wo, P = N * HoWo;

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    // This thread's gather column is fixed for the whole loop: decode it once.
    const int pp = tid & (BN - 1), kk0 = tid >> 6;  // 4 k rows apart by 4
    const int p = p0 + pp;
    int n = 0, oy = 0, ox = 0;
    if (p < P) {
        n = p / HoWo;
        const int q = p - n * HoWo;
        oy = q / Wo;
        ox = q - oy * Wo;
    }
    const unsigned short* xn = x + (long long)n * C * H * W;
    const int iy0 = oy * sh - ph, ix0 = ox * sw - pw;

    // This block's k range: whole BK steps, split as evenly as the steps allow.
    const int steps = (K + BK - 1) / BK, per = (steps + k_split - 1) / k_split;
    const int kbeg = blockIdx.z * per * BK, kend = min(K, (blockIdx.z + 1) * per * BK);
    for (int k0 = kbeg; k0 < kend; k0 += BK) {
        // Weights: 64 rows × 16 k, 4 per thread, consecutive threads along k.
#pragma unroll
        for (int e = tid; e < BM * BK; e += 256) {
            const int r = e / BK, c = e - r * BK;
            const int m = m0 + r, k = k0 + c;
            ws[c][r] = (m < O && k < kend) ? h2f(w[(long long)m * K + k]) : 0.0f;
        }
        // Input: 16 k × 64 columns, 4 per thread, consecutive threads along p.
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const int kk = kk0 + 4 * t, k = k0 + kk;
            float v = 0.0f;
            if (p < P && k < kend) {
                const int c = k / KHW, r = k - c * KHW;
                const int ky = r / KW, kx = r - ky * KW;
                const int iy = iy0 + ky * dh, ix = ix0 + kx * dw;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                    v = h2f(xn[((long long)c * H + iy) * W + ix]);
            }
            xs[kk][pp] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            const float4 a = *reinterpret_cast<const float4*>(&ws[kk][4 * ty]);
            const float4 b = *reinterpret_cast<const float4*>(&xs[kk][4 * tx]);
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }

    if (k_split > 1) {
        float* pz = part + (long long)blockIdx.z * O * P;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int m = m0 + 4 * ty + i;
            if (m >= O) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int pc = p0 + 4 * tx + j;
                if (pc < P) pz[(long long)m * P + pc] = acc[i][j];
            }
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int m = m0 + 4 * ty + i;
        if (m >= O) continue;
        const float b = bias ? bias[m] : 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int pc = p0 + 4 * tx + j;
            if (pc >= P) continue;
            float v = acc[i][j] + b;
            if (act == 1) v = v / (1.0f + __expf(-v));
            const int nn = pc / HoWo, q = pc - nn * HoWo;
            y[((long long)nn * y_ctot + y_coff + m) * HoWo + q] = f2h(v);
        }
    }
}

// The split-K conv's second half: y = act(bias[m] + Σ_z part[z, m, p]), one thread per
// (m, p), shares added in z order.
extern "C" __global__ void conv_epilogue_f16(const float* __restrict__ part,
                                             const float* __restrict__ bias,
                                             unsigned short* __restrict__ y, int O, int P,
                                             int HoWo, int k_split, int act, int y_ctot,
                                             int y_coff)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)O * P) return;
    const int m = (int)(i / P), p = (int)(i - (long long)m * P);
    float v = 0.0f;
    for (int z = 0; z < k_split; z++) v += part[(long long)z * O * P + i];
    v += bias ? bias[m] : 0.0f;
    if (act == 1) v = v / (1.0f + __expf(-v));
    const int nn = p / HoWo, q = p - nn * HoWo;
    y[((long long)nn * y_ctot + y_coff + m) * HoWo + q] = f2h(v);
}
