// int8_gemm.cu — s8·s8 → s32 GEMM with the INT8 engine's epilogue (dp4a path, every arch
// from sm_61):
//     acc[m, n] = Σ_k A[m, k]·B[n, k]      A [M, K] activations, B [N, K] weights (y = A·Bᵀ)
//     y = act(fmaf((float)acc, scale[n], bias ? bias[n] : 0))
//     out: f32, f16 (cvt.rn), or s8 = clamp(__float2int_rn(y · inv_scale), −128, 127)
// CPU reference with the same contract: src/backend/cpu/int8_gemm.rs (bit-identical for
// act none/relu; SiLU uses expf and may differ by a few ulp).
// The tensor-core (mma.sync s8) path for sm_80+ is still to come.
//
// Layout: A and B row-major with K padded to a multiple of 4 by the launcher (K4 = K / 4
// int32 words per row, the pad bytes zero), so a row is read as packed int32 words and fed
// to __dp4a (four s8 products summed into an s32).
// Launch: grid (ceil(N / 64), ceil(M / 64)), block (16, 16), no dynamic shared memory.
// Thread (tx, ty) owns rows ty + 16·i and columns tx + 16·j (i, j < 4) of the 64×64 tile:
// strided so a warp's B reads hit different shared-memory banks.
//
// No #include: NVRTC compiles this with no headers.

#define TM 64
#define TN 64
#define TKW 16  // K step in int32 words (64 bytes)

extern "C" __global__ void int8_gemm_dp4a(const int* A, const int* B, int M, int N, int K4,
                                          const float* scale, const float* bias, int act,
                                          int out_kind, float inv_scale, void* out)
{
    __shared__ int as[TM][TKW + 1];  // +1 word: rows start in different banks
    __shared__ int bs[TN][TKW + 1];

    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int row0 = blockIdx.y * TM, col0 = blockIdx.x * TN;
    int acc[4][4] = {};

    for (int k0 = 0; k0 < K4; k0 += TKW) {
        for (int e = tid; e < TM * TKW; e += 256) {
            const int r = e / TKW, c = e % TKW, kk = k0 + c;
            as[r][c] = (row0 + r < M && kk < K4) ? A[(long long)(row0 + r) * K4 + kk] : 0;
            bs[r][c] = (col0 + r < N && kk < K4) ? B[(long long)(col0 + r) * K4 + kk] : 0;
        }
        __syncthreads();
#pragma unroll
        for (int c = 0; c < TKW; ++c) {
            int a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) a[i] = as[ty + 16 * i][c];
#pragma unroll
            for (int j = 0; j < 4; ++j) b[j] = bs[tx + 16 * j][c];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = __dp4a(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const int m = row0 + ty + 16 * i;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int n = col0 + tx + 16 * j;
            if (n >= N) continue;
            float y = fmaf((float)acc[i][j], scale[n], bias ? bias[n] : 0.0f);
            if (act == 1) y = fmaxf(y, 0.0f);
            else if (act == 2) y = y / (1.0f + expf(-y));
            const long long o = (long long)m * N + n;
            if (out_kind == 0) {
                ((float*)out)[o] = y;
            } else if (out_kind == 1) {
                unsigned short h;
                asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(y));
                ((unsigned short*)out)[o] = h;
            } else {
                int q = __float2int_rn(y * inv_scale);
                q = q < -128 ? -128 : (q > 127 ? 127 : q);
                ((signed char*)out)[o] = (signed char)q;
            }
        }
    }
}
