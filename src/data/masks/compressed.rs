//! COCO's compressed RLE `counts` string (maskApi `rleToString` / `rleFrString`): each run
//! count, from the fourth on as the difference to the count two before (runs of the same
//! colour have similar lengths), written as signed 5-bit groups, low group first, one
//! character `'0' + group` each, bit 0x20 marking "more groups follow".
use super::{MaskError, Rle, rle::pixels};

/// Characters a number may take: 7 × 5 bits hold any difference of two `u32` counts.
const MAX_CHARS: u32 = 7;

impl Rle {
    /// The compressed `counts` string pycocotools writes for this mask (`rleToString`).
    pub fn to_compressed(&self) -> String {
        let c = self.counts();
        let mut s = String::with_capacity(c.len() * 2);
        for (i, &n) in c.iter().enumerate() {
            let mut x = i64::from(n);
            if i > 2 {
                x -= i64::from(c[i - 2]);
            }
            loop {
                let mut ch = (x & 0x1f) as u8;
                x >>= 5;
                let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    ch |= 0x20;
                }
                s.push(char::from(ch + 48));
                if !more {
                    break;
                }
            }
        }
        s
    }

    /// Parses a compressed `counts` string of an `h × w` mask (`rleFrString`). Unlike the C
    /// code, which reads past the end of a truncated string and wraps out-of-range counts,
    /// this returns an error for a byte outside `'0'..='o'`, a string ending inside a
    /// number, a number longer than 7 characters, a count outside `u32`, and counts that do
    /// not sum to `h·w`. Work is linear in the string length.
    pub fn from_compressed(s: &[u8], h: u32, w: u32) -> Result<Rle, MaskError> {
        let total = u64::from(pixels(h, w)?);
        let mut counts: Vec<u32> = Vec::new();
        let (mut sum, mut p) = (0u64, 0usize);
        while p < s.len() {
            let (mut x, mut k) = (0i64, 0u32);
            loop {
                let Some(&b) = s.get(p) else {
                    return Err(MaskError::Truncated { pos: p });
                };
                if !(48..=111).contains(&b) {
                    return Err(MaskError::BadChar { pos: p, byte: b });
                }
                if k == MAX_CHARS {
                    return Err(MaskError::NumberTooLong { pos: p });
                }
                let c = i64::from(b - 48);
                x |= (c & 0x1f) << (5 * k);
                p += 1;
                k += 1;
                if c & 0x20 == 0 {
                    if c & 0x10 != 0 {
                        x |= -1i64 << (5 * k);
                    }
                    break;
                }
            }
            let m = counts.len();
            if m > 2 {
                x += i64::from(counts[m - 2]);
            }
            let n =
                u32::try_from(x).map_err(|_| MaskError::CountOutOfRange { index: m, value: x })?;
            sum += u64::from(n);
            counts.push(n);
        }
        if sum != total {
            return Err(MaskError::CountsSum { sum, h, w });
        }
        Ok(Rle::from_valid(h, w, counts))
    }
}
