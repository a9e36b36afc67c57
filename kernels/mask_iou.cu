// mask_iou.cu — IoU of N predicted × M reference binary masks stored bit-packed, with the
// semantics of pycocotools' maskUtils.iou(dt, gt, iscrowd). The CPU reference, and the
// source of truth for these semantics, is src/backend/cpu/mask_iou.rs.
//
// Bit layout (the contract with the host): a mask of h × w pixels is stored row-major and
// bit-packed into 64-bit words, each image row padded to whole words:
//     words_per_row = ceil(w / 64)
//     pixel (y, x) = bit (x % 64) (bit 0 = least significant) of word y*words_per_row + x/64
// Padding bits (x >= w) are zero. Mask i of a set starts at word i*h*words_per_row; all
// masks of a call share h and w. Because rows are padded, a pair only reads the rows and
// words that cover the intersection of the two masks' boxes.
//
// Semantics, for prediction d and reference g:
//     i = |d AND g|;  u = |d| if crowd[g] else |d| + |g| - i;  iou = i / u   (f64)
// As pycocotools, the IoU of the tight boxes comes first (x, y, w, h as doubles; when g is
// crowd the box union is the area of d's box); pairs whose box IoU is not > 0 are 0 and read
// no pixels. A pair with i = 0 is 0 (pycocotools sets u = 1). Empty masks have box
// (0, 0, 0, 0), so they always give 0, never NaN.
//
// Inputs computed on the host once per mask (PackedMasks::stats): boxes as n × 4 unsigned
// ints (x0, y0, x1, y1), end-exclusive, all 0 for an empty mask, and areas (set pixels).
// out is row-major n_pred × n_gt.
//
// Launch: grid (n_gt, min(n_pred, 65535)), block MASK_IOU_THREADS (128; any multiple of 32
// up to 1024 works), no dynamic shared memory. Block (g, y) handles the pairs (p, g) for
// p = y, y + gridDim.y, ...: its threads stride over the intersection's rows × words,
// AND + popcount, and the block sums the counts (warp shuffles, then one shared slot per
// warp). Limits: n_gt < 2^31, h * words_per_row < 2^32.
//
// No #include: NVRTC compiles this with no headers.

#define MASK_IOU_THREADS 128

extern "C" __global__ void mask_iou_f64(const unsigned long long* pred,
                                        const unsigned long long* gt,
                                        const unsigned int* pred_box,
                                        const unsigned int* gt_box,
                                        const unsigned long long* pred_area,
                                        const unsigned long long* gt_area,
                                        const unsigned char* gt_crowd, int n_pred, int n_gt,
                                        int h, int words_per_row, double* out)
{
    __shared__ unsigned long long warp_sums[32];

    const int g = blockIdx.x;
    const unsigned int gx0 = gt_box[4 * g + 0], gy0 = gt_box[4 * g + 1];
    const unsigned int gx1 = gt_box[4 * g + 2], gy1 = gt_box[4 * g + 3];
    const bool crowd = gt_crowd[g] != 0;
    const unsigned long long mask_words = (unsigned long long)h * words_per_row;
    const unsigned long long* gm = gt + (unsigned long long)g * mask_words;

    for (int p = blockIdx.y; p < n_pred; p += gridDim.y) {
        const unsigned int px0 = pred_box[4 * p + 0], py0 = pred_box[4 * p + 1];
        const unsigned int px1 = pred_box[4 * p + 2], py1 = pred_box[4 * p + 3];
        double* dst = out + (unsigned long long)p * n_gt + g;

        // Box IoU exactly as pycocotools' bbIou (doubles, x/y/w/h). It is the same for every
        // thread, so skipping the pair below is uniform across the block.
        const double dx = px0, dy = py0, dw = px1 - px0, dh = py1 - py0;
        const double gx = gx0, gy = gy0, gw = gx1 - gx0, gh = gy1 - gy0;
        const double bw = fmin(dx + dw, gx + gw) - fmax(dx, gx);
        const double bh = fmin(dy + dh, gy + gh) - fmax(dy, gy);
        double box_iou = 0.0;
        if (bw > 0.0 && bh > 0.0) {
            const double bi = bw * bh;
            const double bu = crowd ? dw * dh : dw * dh + gw * gh - bi;
            box_iou = bi / bu;
        }
        if (!(box_iou > 0.0)) {
            if (threadIdx.x == 0) *dst = 0.0;
            continue;
        }

        // Outside its box a mask is zero, so d AND g vanishes outside the box intersection:
        // the whole words covering its columns x0..x1 count it exactly.
        const unsigned int y0 = py0 > gy0 ? py0 : gy0;
        const unsigned int y1 = py1 < gy1 ? py1 : gy1;
        const unsigned int x0 = px0 > gx0 ? px0 : gx0;
        const unsigned int x1 = px1 < gx1 ? px1 : gx1;
        const unsigned int k0 = x0 / 64, cols = (x1 + 63) / 64 - k0;
        const unsigned int total = (y1 - y0) * cols;
        const unsigned long long* pm = pred + (unsigned long long)p * mask_words;

        // Consecutive threads read consecutive words of a row, then the next row.
        unsigned long long count = 0;
        for (unsigned int t = threadIdx.x; t < total; t += blockDim.x) {
            const unsigned int r = t / cols, c = t - r * cols;
            const unsigned long long off = (unsigned long long)(y0 + r) * words_per_row + k0 + c;
            count += __popcll(pm[off] & gm[off]);
        }

        // Block sum: within each warp by shuffles, then warp 0's lane 0 adds the warp sums.
        for (int s = 16; s > 0; s >>= 1) count += __shfl_down_sync(0xffffffffu, count, s);
        if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = count;
        __syncthreads();
        if (threadIdx.x == 0) {
            unsigned long long inter = 0;
            for (unsigned int w = 0; w < blockDim.x / 32; ++w) inter += warp_sums[w];
            double iou = 0.0;
            if (inter > 0) {
                const unsigned long long u =
                    crowd ? pred_area[p] : pred_area[p] + gt_area[g] - inter;
                iou = (double)inter / (double)u;
            }
            *dst = iou;
        }
        __syncthreads();  // warp_sums is reused by the next p
    }
}
