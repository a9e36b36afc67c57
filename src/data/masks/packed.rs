//! RLE masks → the bit-packed rows of `crate::backend::cpu::mask_iou::PackedMasks`, straight
//! from the runs (no dense byte mask in between).
use super::{MaskError, Rle, rle::check_sizes};
use crate::backend::cpu::mask_iou::PackedMasks;

/// Packs masks of one `h × w` size (given, so that no masks still gives a valid empty set)
/// in order into [`PackedMasks`], ready for `mask_iou`. Errors when a mask is another size.
pub fn pack(rles: &[Rle], h: u32, w: u32) -> Result<PackedMasks, MaskError> {
    check_sizes(rles, h, w)?;
    let (hu, wu) = (h as usize, w as usize);
    let wpr = PackedMasks::words_per_row_for(wu);
    let per_mask = hu * wpr;
    let mut data = vec![0u64; rles.len() * per_mask];
    for (r, dst) in rles.iter().zip(data.chunks_exact_mut(per_mask.max(1))) {
        r.for_each_column_span(|x, y0, y1| {
            let (word, bit) = (x / 64, 1u64 << (x % 64));
            for y in y0..y1 {
                dst[y * wpr + word] |= bit;
            }
        });
    }
    Ok(PackedMasks {
        n: rles.len(),
        h: hu,
        w: wu,
        words_per_row: wpr,
        data,
    })
}
