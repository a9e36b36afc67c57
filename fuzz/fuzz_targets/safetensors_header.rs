//! Arbitrary bytes into the safetensors parser: it must return Ok or Err, never panic, and
//! every tensor of a file it accepts must read back.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = edgedistill::io::Safetensors::from_bytes(data.to_vec()) {
        for name in f.names() {
            f.tensor(name).expect("an accepted file reads back");
        }
    }
});
