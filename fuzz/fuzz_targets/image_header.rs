//! Arbitrary bytes as an image file: the header parser returns a size or an error, never
//! panics, and never reports a zero size.
#![no_main]
use edgedistill::data::image::header_from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = header_from_bytes(data) {
        let (w, hh) = h.display_size();
        assert!(w > 0 && hh > 0 && (1..=8).contains(&h.orientation));
    }
});
