// qconv2d_dp4a.cu — the INT8 engine's convolution on CUDA: implicit GEMM in s8·s8 → s32
// with __dp4a (every arch from sm_61), per-output-channel rescale, bias and activation
// fused, f16 output:
//     acc = Σ_{c, ky, kx} wq[o, c, ky, kx] · q(x)[n, c, iy, ix]      (exact, s32)
//     y   = act(fma((float)acc, scale[o], bias[o])),  scale[o] = in_scale · w_scale[o]
// where q(x) = saturate(round_half_even(x / in_scale)) to [−128, 127] (ONNX
// QuantizeLinear) arrives ready: quantize_s8 (engine_ops.cu) makes it once per value.
// CPU reference with the same contract: backend::cpu::qconv::qconv2d_forward (exact in the
// accumulator; the output differs only by the f16 rounding of y and by x arriving in f16).
//
// As a GEMM: rows m = o, columns p = (n, oy, ox), reduction k = (c, ky, kx). The weights
// are [O, K4] int32 words (4 consecutive k each, k padded with zeros to a multiple of 4 by
// the launcher); the input's words are gathered from the s8 input per tile.
// groups must be 1. The output may be a channel slice of a bigger tensor (y_ctot, y_coff).
//
// Split K as in conv2d_f16.cu: with k_split > 1 block z stores its exact s32 share to
// part[z, m, p] and qconv_epilogue sums the shares (exact in s32) and rescales.
//
// Launch: grid (ceil(P / 64), ceil(O / 64), k_split), block 256. Thread (tx, ty) = (tid % 16,
// tid / 16) owns rows 4·ty .. 4·ty+3 and columns 4·tx .. 4·tx+3 of the 64 × 64 tile.
// act: 0 none, 1 SiLU.
//
// No #include: NVRTC compiles this with no headers.

#define BM 64
#define BN 64
#define BKW 8  // K step in int32 words (32 k)

__device__ __forceinline__ unsigned short f2h(float f) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}

extern "C" __global__ void __launch_bounds__(256)
qconv2d_dp4a(const signed char* __restrict__ x, const int* __restrict__ w,
             const float* __restrict__ scale, const float* __restrict__ bias,
             unsigned short* __restrict__ y, int N, int C, int H, int W, int O,
             int KH, int KW, int sh, int sw, int ph, int pw, int dh, int dw, int Ho, int Wo,
             int act, int y_ctot, int y_coff, int k_split, int* __restrict__ part)
{
    __shared__ __align__(16) int ws[BKW][BM + 4];
    __shared__ __align__(16) int xs[BKW][BN + 4];

    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * BM, p0 = blockIdx.x * BN;
    const int KHW = KH * KW, K = C * KHW, K4 = (K + 3) >> 2, HoWo = Ho * Wo, P = N * HoWo;

    int acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0;

    const int pp = tid & (BN - 1), kw0 = tid >> 6;  // words kw0 and kw0 + 4
    const int p = p0 + pp;
    int n = 0, oy = 0, ox = 0;
    if (p < P) {
        n = p / HoWo;
        const int q = p - n * HoWo;
        oy = q / Wo;
        ox = q - oy * Wo;
    }
    const signed char* xn = x + (long long)n * C * H * W;
    const int iy0 = oy * sh - ph, ix0 = ox * sw - pw;

    const int steps = (K4 + BKW - 1) / BKW, per = (steps + k_split - 1) / k_split;
    const int wbeg = blockIdx.z * per * BKW, wend = min(K4, (blockIdx.z + 1) * per * BKW);
    for (int w0 = wbeg; w0 < wend; w0 += BKW) {
#pragma unroll
        for (int e = tid; e < BM * BKW; e += 256) {
            const int r = e / BKW, c = e - r * BKW;
            const int m = m0 + r, kw = w0 + c;
            ws[c][r] = (m < O && kw < wend) ? w[(long long)m * K4 + kw] : 0;
        }
#pragma unroll
        for (int t = 0; t < 2; t++) {
            const int kwl = kw0 + 4 * t, kw = w0 + kwl;
            int word = 0;
            if (p < P && kw < wend) {
#pragma unroll
                for (int b = 0; b < 4; b++) {
                    const int k = 4 * kw + b;
                    if (k < K) {
                        const int c = k / KHW, r = k - c * KHW;
                        const int ky = r / KW, kx = r - ky * KW;
                        const int iy = iy0 + ky * dh, ix = ix0 + kx * dw;
                        if (iy >= 0 && iy < H && ix >= 0 && ix < W) {
                            const int q = xn[((long long)c * H + iy) * W + ix];
                            word |= (q & 0xff) << (8 * b);
                        }
                    }
                }
            }
            xs[kwl][pp] = word;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BKW; kk++) {
            const int4 a = *reinterpret_cast<const int4*>(&ws[kk][4 * ty]);
            const int4 b = *reinterpret_cast<const int4*>(&xs[kk][4 * tx]);
            const int av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = __dp4a(av[i], bv[j], acc[i][j]);
        }
        __syncthreads();
    }

    if (k_split > 1) {
        int* pz = part + (long long)blockIdx.z * O * P;
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
        const float s = scale[m], b = bias ? bias[m] : 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int pc = p0 + 4 * tx + j;
            if (pc >= P) continue;
            float v = fmaf((float)acc[i][j], s, b);
            if (act == 1) v = v / (1.0f + __expf(-v));
            const int nn = pc / HoWo, q = pc - nn * HoWo;
            y[((long long)nn * y_ctot + y_coff + m) * HoWo + q] = f2h(v);
        }
    }
}

// The split-K INT8 conv's second half: y = act(fma((float)Σ_z part[z, m, p], scale[m],
// bias[m])), one thread per (m, p).
extern "C" __global__ void qconv_epilogue(const int* __restrict__ part,
                                          const float* __restrict__ scale,
                                          const float* __restrict__ bias,
                                          unsigned short* __restrict__ y, int O, int P, int HoWo,
                                          int k_split, int act, int y_ctot, int y_coff)
{
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)O * P) return;
    const int m = (int)(i / P), p = (int)(i - (long long)m * P);
    int acc = 0;
    for (int z = 0; z < k_split; z++) acc += part[(long long)z * O * P + i];
    float v = fmaf((float)acc, scale[m], bias ? bias[m] : 0.0f);
    if (act == 1) v = v / (1.0f + __expf(-v));
    const int nn = p / HoWo, q = p - nn * HoWo;
    y[((long long)nn * y_ctot + y_coff + m) * HoWo + q] = f2h(v);
}
