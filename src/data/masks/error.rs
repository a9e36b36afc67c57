//! What can be wrong with a mask given as user data. The mask functions do not know the file
//! or the annotation they are working on, so they return this; the caller names both with
//! [`MaskError::at`], which gives the crate's `Error::Format`.
use std::fmt;

/// One problem with a polygon, an RLE or a dense mask. Indices are 0-based.
#[derive(Clone, Debug, PartialEq)]
pub enum MaskError {
    /// `h·w` does not fit maskApi's 32-bit run counts.
    TooLarge { h: u64, w: u64 },
    /// A dense mask whose byte count is not `h·w`.
    DenseLen { len: usize, h: u32, w: u32 },
    /// Run counts that do not cover the image exactly.
    CountsSum { sum: u64, h: u32, w: u32 },
    /// A byte outside `'0'..='o'` (48..=111) in a compressed RLE string.
    BadChar { pos: usize, byte: u8 },
    /// A compressed RLE string that ends inside a number (its last byte says "more").
    Truncated { pos: usize },
    /// A number of more than 7 characters (35 bits) in a compressed RLE string.
    NumberTooLong { pos: usize },
    /// A run count (in a compressed string: after adding back the delta) outside
    /// `0..=u32::MAX`.
    CountOutOfRange { index: usize, value: i64 },
    /// A segmentation with no polygon at all.
    NoParts,
    /// A polygon part with fewer than 3 points.
    TooFewPoints { part: usize, points: usize },
    /// A polygon part with an odd number of coordinates.
    OddCoordinates { part: usize, len: usize },
    /// A NaN or infinite polygon coordinate.
    NonFinite {
        part: usize,
        index: usize,
        value: f64,
    },
    /// A polygon coordinate beyond ±[`super::MAX_COORD`] pixels.
    CoordinateOutOfRange {
        part: usize,
        index: usize,
        value: f64,
    },
    /// Masks that must share a size do not (`index` is the first that differs).
    SizeMismatch {
        index: usize,
        h: u32,
        w: u32,
        expect_h: u32,
        expect_w: u32,
    },
    /// An operation that needs at least one mask got none.
    NoMasks { op: &'static str },
    /// `iscrowd` flags that do not match the reference masks one to one.
    CrowdLen { flags: usize, masks: usize },
}

impl MaskError {
    /// The crate error for this problem in `path` (file) at `record` (e.g. "annotation 17").
    pub fn at(self, path: impl Into<String>, record: impl Into<String>) -> crate::Error {
        crate::Error::Format {
            path: path.into(),
            record: record.into(),
            msg: self.to_string(),
        }
    }
}

impl fmt::Display for MaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use MaskError::*;
        match self {
            TooLarge { h, w } => write!(
                f,
                "mask size {h}×{w} has more pixels than 32-bit RLE counts can hold"
            ),
            DenseLen { len, h, w } => write!(
                f,
                "dense mask has {len} bytes, a {h}×{w} mask needs {}",
                u64::from(*h) * u64::from(*w)
            ),
            CountsSum { sum, h, w } => write!(
                f,
                "RLE counts sum to {sum} but the mask size {h}×{w} has {} pixels",
                u64::from(*h) * u64::from(*w)
            ),
            BadChar { pos, byte } => write!(
                f,
                "compressed RLE counts: byte {pos} is {:?}, outside the alphabet '0'..='o'",
                char::from(*byte)
            ),
            Truncated { pos } => write!(
                f,
                "compressed RLE counts: string ends at byte {pos} in the middle of a number"
            ),
            NumberTooLong { pos } => write!(
                f,
                "compressed RLE counts: number ending at byte {pos} is longer than 7 characters"
            ),
            CountOutOfRange { index, value } => {
                write!(f, "RLE count {index} is {value}, outside 0..=4294967295")
            }
            NoParts => write!(f, "segmentation has no polygon"),
            TooFewPoints { part, points } => write!(
                f,
                "polygon {part} has {points} point(s), at least 3 are needed"
            ),
            OddCoordinates { part, len } => write!(
                f,
                "polygon {part} has an odd number of coordinates ({len}); they come in x, y pairs"
            ),
            NonFinite { part, index, value } => {
                write!(f, "polygon {part} coordinate {index} is {value}")
            }
            CoordinateOutOfRange { part, index, value } => write!(
                f,
                "polygon {part} coordinate {index} is {value}, beyond ±{} pixels",
                super::MAX_COORD
            ),
            SizeMismatch {
                index,
                h,
                w,
                expect_h,
                expect_w,
            } => write!(
                f,
                "mask {index} is {h}×{w} but the masks must all be {expect_h}×{expect_w}"
            ),
            NoMasks { op } => write!(f, "{op} needs at least one mask"),
            CrowdLen { flags, masks } => write!(
                f,
                "{flags} iscrowd flags for {masks} reference masks (need one per mask)"
            ),
        }
    }
}

impl std::error::Error for MaskError {}
