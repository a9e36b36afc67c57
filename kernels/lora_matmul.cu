// lora_matmul.cu — fused LoRA linear forward, one pass over x:
//     y = x·Wᵀ + b + s·(x·Aᵀ)·Bᵀ      x [N, K], W [M, K], A [R, K], B [M, R], y [N, M]
// W + s·B·A is never formed: the block accumulates x·Wᵀ and the rank-R bottleneck
// t = x·Aᵀ in the same sweep over K, then adds s·t·Bᵀ in the epilogue.
// CPU reference (same semantics): Tensor::lora_linear in src/tensor/ops/lora.rs.
// This first version is f32 on CUDA cores; the f16/bf16 tensor-core path and the backward
// (dx, dA, dB) come next.
//
// Launch: grid (ceil(M / 64), ceil(N / 64)), block (16, 16), no dynamic shared memory;
// R ≤ 64. Thread (tx, ty) owns rows 4·ty.. and output columns 4·tx.. of the 64×64 tile,
// and bottleneck columns 4·tx.. of t. All inputs contiguous row-major; b may be null.
//
// No #include: NVRTC compiles this with no headers.

#define BT 64   // tile rows (x) and columns (y)
#define BK 16   // K step
#define RMAX 64

extern "C" __global__ void lora_fwd_f32(const float* x, const float* w, const float* bias,
                                        const float* a, const float* bm, int N, int M, int K,
                                        int R, float scale, float* y)
{
    __shared__ float xs[BT][BK + 1];     // +1: no bank conflicts on column reads
    __shared__ float ws[BT][BK + 1];
    __shared__ float as[RMAX][BK + 1];
    __shared__ float ts[BT][RMAX + 1];   // the block's full t rows for the epilogue
    __shared__ float bs[BT][RMAX + 1];   // B rows of the block's output columns

    const int tx = threadIdx.x, ty = threadIdx.y, tid = ty * 16 + tx;
    const int row0 = blockIdx.y * BT, col0 = blockIdx.x * BT;
    float acc[4][4] = {}, tac[4][4] = {};

    for (int k0 = 0; k0 < K; k0 += BK) {
        // Stage x, W and A tiles (zero past the edges).
        for (int e = tid; e < BT * BK; e += 256) {
            const int r = e / BK, c = e % BK, kk = k0 + c;
            xs[r][c] = (row0 + r < N && kk < K) ? x[(long long)(row0 + r) * K + kk] : 0.0f;
            ws[r][c] = (col0 + r < M && kk < K) ? w[(long long)(col0 + r) * K + kk] : 0.0f;
        }
        for (int e = tid; e < RMAX * BK; e += 256) {
            const int r = e / BK, c = e % BK, kk = k0 + c;
            as[r][c] = (r < R && kk < K) ? a[(long long)r * K + kk] : 0.0f;
        }
        __syncthreads();
        for (int c = 0; c < BK; c++) {
            float xv[4], wv[4], av[4];
            for (int i = 0; i < 4; i++) xv[i] = xs[ty * 4 + i][c];
            for (int j = 0; j < 4; j++) wv[j] = ws[tx * 4 + j][c];
            for (int j = 0; j < 4; j++) av[j] = as[tx * 4 + j][c];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) {
                    acc[i][j] += xv[i] * wv[j];
                    tac[i][j] += xv[i] * av[j];
                }
        }
        __syncthreads();
    }
    // Epilogue: share t, stage B, add s·t·Bᵀ and the bias.
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) ts[ty * 4 + i][tx * 4 + j] = tac[i][j];
    for (int e = tid; e < BT * RMAX; e += 256) {
        const int r = e / RMAX, c = e % RMAX;
        bs[r][c] = (col0 + r < M && c < R) ? bm[(long long)(col0 + r) * R + c] : 0.0f;
    }
    __syncthreads();
    for (int i = 0; i < 4; i++) {
        const int row = row0 + ty * 4 + i;
        if (row >= N) continue;
        for (int j = 0; j < 4; j++) {
            const int col = col0 + tx * 4 + j;
            if (col >= M) continue;
            float low = 0.0f;
            for (int q = 0; q < R; q++) low += ts[ty * 4 + i][q] * bs[tx * 4 + j][q];
            y[(long long)row * M + col] = acc[i][j] + scale * low + (bias ? bias[col] : 0.0f);
        }
    }
}
