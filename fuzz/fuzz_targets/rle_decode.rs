//! Arbitrary bytes into the compressed-RLE parser: 4 bytes of size (h, w as u16, so h·w
//! ranges from 0 to past the u32 limit), the rest the `counts` string. It must return Ok or
//! Err, never panic or hang, and every mask it accepts must behave: re-encode to the same
//! runs, decode to h·w bytes holding `area` ones, and agree with its packed form.
#![no_main]
use edgedistill::backend::cpu::mask_iou::PackedMasks;
use edgedistill::data::masks::{Rle, pack};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((size, s)) = data.split_first_chunk::<4>() else {
        return;
    };
    let h = u32::from(u16::from_le_bytes([size[0], size[1]]));
    let w = u32::from(u16::from_le_bytes([size[2], size[3]]));
    let Ok(r) = Rle::from_compressed(s, h, w) else {
        return;
    };
    let text = r.to_compressed();
    assert_eq!(Rle::from_compressed(text.as_bytes(), h, w).as_ref(), Ok(&r));
    let area = r.area();
    assert!(area <= u64::from(h) * u64::from(w));
    let _ = r.to_bbox();
    let both = Rle::merge(&[r.clone(), r.clone()], false).expect("same size");
    assert_eq!(both.area(), area);
    // Dense forms only for small masks (the size alone may ask for 4 GB).
    if u64::from(h) * u64::from(w) <= 1 << 16 {
        let dense = r.decode();
        assert_eq!(dense.iter().map(|&v| u64::from(v)).sum::<u64>(), area);
        let p = pack(std::slice::from_ref(&r), h, w).expect("same size");
        let want = PackedMasks::from_u8(&dense, 1, h as usize, w as usize).expect("h·w bytes");
        assert_eq!(p, want);
    }
});
