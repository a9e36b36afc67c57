// ms_deform_attn.cu — multi-scale deformable attention (Deformable DETR, Grounding DINO),
// forward and backward, f32:
//     out[b, q, h, :] = Σ_{l, p} attn[b, q, h, l, p] · bilinear(value of level l, head h,
//                                                           at loc[b, q, h, l, p])
// CPU reference (same semantics): src/backend/cpu/ms_deform_attn.rs, via
// Tensor::ms_deform_attn in src/tensor/ops/ms_deform_attn.rs. f16/bf16 come with the
// tensor-core kernels, as for attention.cu.
//
// Layout, all contiguous: value [B, S, H, D] with level l in rows starts[l].. as an
// hw[2l] × hw[2l+1] (height × width) map; loc [B, Q, H, L, P, 2] as (x, y) in [0, 1];
// attn [B, Q, H, L, P]; out and grad_out [B, Q, H, D]; hw and starts int arrays. Samples
// outside a map read zeros (grid_sample, bilinear, zeros, align_corners=false).
//
// msda_fwd_f32, msda_bwd_value_f32: one thread per output element (b, q, h, d), so a warp
//   reads consecutive channels of a value row. Grid ceil(B·Q·H·D / 256), block 256.
//   bwd_value atomicAdds a·w_tap·grad_out into grad_value, which the caller zeroes.
// msda_bwd_sample_f32: one warp per (b, q, h), lanes over d; the per-sample gradients of
//   loc and attn are warp-reduced and written by lane 0 (each sample has one owner, no
//   atomics). Either output may be null. Grid ceil(B·Q·H / 8), block 256.
//
// No #include: NVRTC compiles this with no headers.

struct Taps {
    long long off[4];  // value offsets of the nw, ne, sw, se taps; -1 outside the map
    float w[4];
    float fx, fy;      // fractional position past the nw tap
};

// The taps of location (x, y) on a hl × wl map whose pixel (0, 0) is at value[base] and
// whose rows are `stride` floats apart. The position is grid_sample's arithmetic,
// ((2x − 1 + 1)·W − 1) / 2, with explicit roundings so no FMA contraction moves a sample
// across a pixel boundary relative to the CPU reference.
__device__ __forceinline__ Taps make_taps(float x, float y, int hl, int wl, long long base,
                                          long long stride)
{
    const float gx = __fsub_rn(__fmul_rn(2.0f, x), 1.0f);
    const float gy = __fsub_rn(__fmul_rn(2.0f, y), 1.0f);
    const float ix = __fdiv_rn(__fsub_rn(__fmul_rn(__fadd_rn(gx, 1.0f), (float)wl), 1.0f), 2.0f);
    const float iy = __fdiv_rn(__fsub_rn(__fmul_rn(__fadd_rn(gy, 1.0f), (float)hl), 1.0f), 2.0f);
    const float x0f = floorf(ix), y0f = floorf(iy);
    Taps t;
    t.fx = ix - x0f;
    t.fy = iy - y0f;
    // Far out: every tap outside (before the int conversion can overflow). NaN: tap 0 with
    // NaN weights, as the CPU reference (its saturating `as` maps NaN to 0).
    const int x0 = x0f != x0f ? 0 : (x0f > -2.0f && x0f < (float)wl ? (int)x0f : -2);
    const int y0 = y0f != y0f ? 0 : (y0f > -2.0f && y0f < (float)hl ? (int)y0f : -2);
    const float ux = 1.0f - t.fx, uy = 1.0f - t.fy;
    const int xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
    const float ws[4] = {ux * uy, t.fx * uy, ux * t.fy, t.fx * t.fy};
    for (int i = 0; i < 4; i++) {
        const bool in = xs[i] >= 0 && xs[i] < wl && ys[i] >= 0 && ys[i] < hl;
        t.off[i] = in ? base + ((long long)ys[i] * wl + xs[i]) * stride : -1;
        t.w[i] = ws[i];
    }
    return t;
}

extern "C" __global__ void msda_fwd_f32(const float* value, const int* hw, const int* starts,
                                        const float* loc, const float* attn, int B, int S,
                                        int H, int D, int Q, int L, int P, float* out)
{
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * Q * H * D) return;
    const int d = idx % D;
    const long long bqh = idx / D;
    const int h = bqh % H, b = bqh / H / Q;
    const long long stride = (long long)H * D;
    float acc = 0.0f;
    for (int l = 0; l < L; l++) {
        const long long base = (((long long)b * S + starts[l]) * H + h) * D + d;
        for (int p = 0; p < P; p++) {
            const long long k = (bqh * L + l) * P + p;
            const Taps t = make_taps(loc[2 * k], loc[2 * k + 1], hw[2 * l], hw[2 * l + 1], base,
                                     stride);
            float s = 0.0f;  // sample first, then weight: the reference's order
            for (int i = 0; i < 4; i++)
                if (t.off[i] >= 0) s += value[t.off[i]] * t.w[i];
            acc += attn[k] * s;
        }
    }
    out[idx] = acc;
}

extern "C" __global__ void msda_bwd_value_f32(const int* hw, const int* starts,
                                              const float* loc, const float* attn,
                                              const float* grad_out, int B, int S, int H, int D,
                                              int Q, int L, int P, float* grad_value)
{
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * Q * H * D) return;
    const int d = idx % D;
    const long long bqh = idx / D;
    const int h = bqh % H, b = bqh / H / Q;
    const long long stride = (long long)H * D;
    const float g = grad_out[idx];
    for (int l = 0; l < L; l++) {
        const long long base = (((long long)b * S + starts[l]) * H + h) * D + d;
        for (int p = 0; p < P; p++) {
            const long long k = (bqh * L + l) * P + p;
            const Taps t = make_taps(loc[2 * k], loc[2 * k + 1], hw[2 * l], hw[2 * l + 1], base,
                                     stride);
            const float gv = g * attn[k];
            for (int i = 0; i < 4; i++)
                if (t.off[i] >= 0) atomicAdd(&grad_value[t.off[i]], t.w[i] * gv);
        }
    }
}

__device__ __forceinline__ float warp_sum(float x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

extern "C" __global__ void msda_bwd_sample_f32(const float* value, const int* hw,
                                               const int* starts, const float* loc,
                                               const float* attn, const float* grad_out, int B,
                                               int S, int H, int D, int Q, int L, int P,
                                               float* grad_loc, float* grad_attn)
{
    const long long bqh = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (bqh >= (long long)B * Q * H) return;  // uniform per warp
    const int h = bqh % H, b = bqh / H / Q;
    const long long stride = (long long)H * D;
    for (int l = 0; l < L; l++) {
        const int hl = hw[2 * l], wl = hw[2 * l + 1];
        const long long base = (((long long)b * S + starts[l]) * H + h) * D;
        for (int p = 0; p < P; p++) {
            const long long k = (bqh * L + l) * P + p;
            const Taps t = make_taps(loc[2 * k], loc[2 * k + 1], hl, wl, base, stride);
            const float a = attn[k], ux = 1.0f - t.fx, uy = 1.0f - t.fy;
            float gs = 0.0f, gx = 0.0f, gy = 0.0f;
            for (int d = lane; d < D; d += 32) {
                const float g = grad_out[bqh * D + d], gv = g * a;
                float v[4], s = 0.0f;
                for (int i = 0; i < 4; i++) {
                    v[i] = t.off[i] >= 0 ? value[t.off[i] + d] : 0.0f;
                    if (t.off[i] >= 0) s += v[i] * t.w[i];
                }
                gs += g * s;
                gx += ((v[1] - v[0]) * uy + (v[3] - v[2]) * t.fy) * gv;
                gy += ((v[2] - v[0]) * ux + (v[3] - v[1]) * t.fx) * gv;
            }
            gs = warp_sum(gs);
            gx = warp_sum(gx);
            gy = warp_sum(gy);
            if (lane == 0) {
                // d pixel / d loc = size (grid = 2·loc − 1, then ·size/2).
                if (grad_attn) grad_attn[k] = gs;
                if (grad_loc) {
                    grad_loc[2 * k] = gx * (float)wl;
                    grad_loc[2 * k + 1] = gy * (float)hl;
                }
            }
        }
    }
}
