// attention.cu — scaled dot-product attention forward with online softmax (one pass over
// the keys, no [Lq, Lk] score matrix in memory):
//     out = softmax(q·kᵀ·scale + bias + mask) · v
// CPU reference (same semantics): Tensor::scaled_dot_product_attention in
// src/tensor/ops/attention.rs. This first version computes in f32 on CUDA cores; the
// tensor-core (mma) path for f16/bf16 comes next.
//
// Layout: q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv], out [B, H, Lq, Dv], all
// contiguous f32; D, Dv ≤ 128. bias (optional, may be null) is read at
//     bias[b*bs_b + h*bs_h + i*bs_q + j*bs_k]
// so any broadcast (stride 0) works. key_pad (optional, may be null): u8 [B, Lk], non-zero
// = ignore that key. A query with every key masked gets NaN (as torch).
//
// Launch: grid (ceil(Lq / ROWS), B*H), block ROWS*32 threads (one warp per query row),
// dynamic shared memory (TILE*(D+1) + TILE*Dv + ROWS*D) floats. Each block stages TILE keys and
// values in shared memory, shared by its ROWS query rows. Within a warp, lane j scores key j
// of the tile (a full dot product, no shuffles), the warp updates the running max and sum,
// then each lane accumulates its output columns d = lane, lane+32, ... (p_j broadcast by
// shuffle).
//
// No #include: NVRTC compiles this with no headers.

#define ROWS 8
#define TILE 32
#define MAXV 4  // output columns per lane: Dv ≤ 32 * MAXV = 128
#define INFINITY __int_as_float(0x7f800000)  // no headers under NVRTC

__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

extern "C" __global__ void attention_fwd_f32(const float* q, const float* k, const float* v,
                                             const float* bias, long long bs_b, long long bs_h,
                                             long long bs_q, long long bs_k,
                                             const unsigned char* key_pad, int H, int Lq, int Lk,
                                             int D, int Dv, float scale, float* out)
{
    extern __shared__ float smem[];
    // K rows padded to D + 1 floats: lane j reads row j at column d, and an unpadded stride
    // of D (a multiple of 32) would put all 32 lanes in one shared-memory bank.
    const int KS = D + 1;
    float* ks = smem;               // TILE × (D + 1)
    float* vs = ks + TILE * KS;     // TILE × Dv
    float* qs = vs + TILE * Dv;     // ROWS × D

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int bh = blockIdx.y, b = bh / H, h = bh - b * H;
    const int i = blockIdx.x * ROWS + warp;          // this warp's query row
    const bool row_ok = i < Lq;
    const float* kb = k + (long long)bh * Lk * D;
    const float* vb = v + (long long)bh * Lk * Dv;

    // This warp's query row, pre-scaled, into shared memory.
    for (int d = lane; d < D; d += 32)
        qs[warp * D + d] = row_ok ? q[((long long)bh * Lq + i) * D + d] * scale : 0.0f;

    float m = -INFINITY, l = 0.0f, acc[MAXV];
    for (int c = 0; c < MAXV; c++) acc[c] = 0.0f;

    for (int j0 = 0; j0 < Lk; j0 += TILE) {
        const int n = min(TILE, Lk - j0);
        __syncthreads();  // previous tile fully used (and qs written, first time)
        for (int t = threadIdx.x; t < TILE * D; t += blockDim.x) {
            const int r = t / D, c = t - r * D;
            ks[r * KS + c] = r < n ? kb[(long long)(j0 + r) * D + c] : 0.0f;
        }
        for (int t = threadIdx.x; t < TILE * Dv; t += blockDim.x) {
            const int r = t / Dv;
            vs[t] = r < n ? vb[(long long)(j0 + r) * Dv + (t - r * Dv)] : 0.0f;
        }
        __syncthreads();
        if (!row_ok) continue;  // uniform per warp; the block still joins the barriers

        // Lane j scores key j0 + j.
        float s = -INFINITY;
        const int j = j0 + lane;
        if (lane < n && !(key_pad && key_pad[(long long)b * Lk + j])) {
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += qs[warp * D + d] * ks[lane * KS + d];
            s = dot;
            if (bias) s += bias[b * bs_b + h * bs_h + (long long)i * bs_q + (long long)j * bs_k];
        }
        const float m_new = fmaxf(m, warp_max(s));
        if (m_new == -INFINITY) continue;  // nothing unmasked yet
        const float p = __expf(s - m_new);  // 0 for masked keys
        const float corr = __expf(m - m_new);
        l = l * corr + warp_sum(p);
        for (int c = 0; c < MAXV; c++) acc[c] *= corr;
        for (int jj = 0; jj < n; jj++) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
            for (int c = 0; c < MAXV; c++) {
                const int d = lane + 32 * c;
                if (d < Dv) acc[c] += pj * vs[jj * Dv + d];
            }
        }
        m = m_new;
    }
    if (!row_ok) return;
    const float inv = l > 0.0f ? 1.0f / l : __int_as_float(0x7fc00000);  // all masked: NaN
    for (int c = 0; c < MAXV; c++) {
        const int d = lane + 32 * c;
        if (d < Dv) out[((long long)bh * Lq + i) * Dv + d] = acc[c] * inv;
    }
}
