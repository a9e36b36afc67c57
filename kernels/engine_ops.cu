// engine_ops.cu — the engine's small ops on CUDA (everything but the convolutions), over
// f16 NCHW values; the box decode writes f32 (boxes are in input pixels, where f16 steps
// by 0.5 above 512). One thread per output element throughout.
// CPU references (engine::exec): Tensor::max_pool2d, upsample_nearest2d, add, sigmoid,
// yolov8::proto::depth_to_space, Tensor::cat / narrow (copy_slab), and
// yolov8::head::decode_boxes.
//
// No #include: NVRTC compiles this with no headers.

#define INFINITY __int_as_float(0x7f800000)

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
__device__ __forceinline__ long long gid() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

// Square max pooling with −∞ padding: x [NC, H, W] → y [NC, Ho, Wo].
extern "C" __global__ void maxpool_f16(const unsigned short* x, unsigned short* y, long long NC,
                                       int H, int W, int Ho, int Wo, int k, int s, int pad)
{
    const long long i = gid();
    if (i >= NC * Ho * Wo) return;
    const int ox = (int)(i % Wo), oy = (int)((i / Wo) % Ho);
    const long long nc = i / ((long long)Ho * Wo);
    const unsigned short* xp = x + nc * H * W;
    float m = -INFINITY;
    for (int ky = 0; ky < k; ky++) {
        const int iy = oy * s - pad + ky;
        if (iy < 0 || iy >= H) continue;
        for (int kx = 0; kx < k; kx++) {
            const int ix = ox * s - pad + kx;
            if (ix >= 0 && ix < W) m = fmaxf(m, h2f(xp[iy * W + ix]));
        }
    }
    y[i] = f2h(m);
}

// Nearest upsampling by an integer factor f: x [NC, H, W] → y [NC, H·f, W·f].
extern "C" __global__ void upsample_f16(const unsigned short* x, unsigned short* y, long long NC,
                                        int H, int W, int f)
{
    const long long i = gid();
    const int Wo = W * f, Ho = H * f;
    if (i >= NC * Ho * Wo) return;
    const int ox = (int)(i % Wo), oy = (int)((i / Wo) % Ho);
    const long long nc = i / ((long long)Ho * Wo);
    y[i] = x[(nc * H + oy / f) * W + ox / f];
}

extern "C" __global__ void add_f16(const unsigned short* a, const unsigned short* b,
                                   unsigned short* y, long long n)
{
    const long long i = gid();
    if (i < n) y[i] = f2h(h2f(a[i]) + h2f(b[i]));
}

extern "C" __global__ void sigmoid_f16(const unsigned short* x, unsigned short* y, long long n)
{
    const long long i = gid();
    if (i < n) y[i] = f2h(1.0f / (1.0f + __expf(-h2f(x[i]))));
}

// ONNX DepthToSpace, mode CRD: x [N, C·b·b, H, W] → y [N, C, H·b, W·b],
// y[n, c, h·b + i, w·b + j] = x[n, c·b·b + i·b + j, h, w].
extern "C" __global__ void depth_to_space_f16(const unsigned short* x, unsigned short* y,
                                              long long NC, int H, int W, int b)
{
    const long long i = gid();
    const int Wo = W * b, Ho = H * b;
    if (i >= NC * Ho * Wo) return;
    const int ox = (int)(i % Wo), oy = (int)((i / Wo) % Ho);
    const long long nc = i / ((long long)Ho * Wo);
    const int h = oy / b, ii = oy - h * b, w = ox / b, jj = ox - w * b;
    y[i] = x[((nc * b * b + ii * b + jj) * H + h) * W + w];
}

// Concat / split: `outer` runs of `chunk` elements, from src[o·src_stride + src_off + e] to
// dst[o·dst_stride + dst_off + e]; each side f16 (0) or f32 (1).
extern "C" __global__ void copy_slab(const void* src, int src_f32, void* dst, int dst_f32,
                                     long long outer, long long chunk, long long src_stride,
                                     long long src_off, long long dst_stride, long long dst_off)
{
    const long long i = gid();
    if (i >= outer * chunk) return;
    const long long o = i / chunk, e = i - o * chunk;
    const long long si = o * src_stride + src_off + e, di = o * dst_stride + dst_off + e;
    if (src_f32 && dst_f32) {
        ((float*)dst)[di] = ((const float*)src)[si];
    } else if (src_f32) {
        ((unsigned short*)dst)[di] = f2h(((const float*)src)[si]);
    } else if (dst_f32) {
        ((float*)dst)[di] = h2f(((const unsigned short*)src)[si]);
    } else {
        ((unsigned short*)dst)[di] = ((const unsigned short*)src)[si];
    }
}

// The head's box decode (ultralytics Detect._inference): x f16 [N, 4·R, A] distributions;
// per side the softmax over R bins and its expectation, then dist2bbox as xywh around the
// anchor centre (ax, ay) (grid units, +0.5) times the level stride. y f32 [N, 4, A].
// anchors: f32 [3, A] = (ax, ay, stride).
extern "C" __global__ void decode_boxes_f16(const unsigned short* x, const float* anchors,
                                            float* y, int N, int R, int A)
{
    const long long i = gid();
    if (i >= (long long)N * A) return;
    const int n = (int)(i / A), a = (int)(i - (long long)n * A);
    const unsigned short* xb = x + (long long)n * 4 * R * A + a;
    float d[4];
    for (int side = 0; side < 4; side++) {
        const unsigned short* r0 = xb + (long long)side * R * A;
        if (R == 1) {  // no DFL: the distance itself
            d[side] = h2f(r0[0]);
            continue;
        }
        float m = -INFINITY;
        for (int r = 0; r < R; r++) m = fmaxf(m, h2f(r0[(long long)r * A]));
        float se = 0.0f, sw = 0.0f;
        for (int r = 0; r < R; r++) {
            const float p = __expf(h2f(r0[(long long)r * A]) - m);
            se += p;
            sw += (float)r * p;
        }
        d[side] = sw / se;
    }
    const float ax = anchors[a], ay = anchors[A + a], st = anchors[2 * A + a];
    const float x1 = ax - d[0], y1 = ay - d[1], x2 = ax + d[2], y2 = ay + d[3];
    float* yo = y + (long long)n * 4 * A + a;
    yo[0] = (x1 + x2) * 0.5f * st;
    yo[A] = (y1 + y2) * 0.5f * st;
    yo[2 * A] = (x2 - x1) * st;
    yo[3 * A] = (y2 - y1) * st;
}

// f32 → f16 (the input image) and f16 → f32 (outputs), n elements.
extern "C" __global__ void f32_to_f16(const float* x, unsigned short* y, long long n)
{
    const long long i = gid();
    if (i < n) y[i] = f2h(x[i]);
}

// ONNX QuantizeLinear (int8, zero point 0) of an f16 value for the INT8 convs:
// y = saturate(round_half_even(x / s)) to [−128, 127], NaN → 0, as the CPU's quantize_s8.
// x · (1/s) is within 2 ulp of x / s, so its rounding can differ only next to a .5
// boundary; those few values take the division, and the result equals the CPU's.
extern "C" __global__ void quantize_s8(const unsigned short* x, signed char* y, long long n,
                                       float s)
{
    const long long i = gid();
    if (i >= n) return;
    const float v = h2f(x[i]), r = v * (1.0f / s);
    float q = rintf(r);
    if (fabsf(fabsf(r - q) - 0.5f) < 1e-4f * fmaxf(1.0f, fabsf(r))) q = rintf(v / s);
    q = fminf(fmaxf(q, -128.0f), 127.0f);
    y[i] = (signed char)((v == v) ? (int)q : 0);
}
