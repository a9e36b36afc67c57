//! Arbitrary bytes into the engine loader: Ok or Err, never a panic. When the first byte is
//! odd the input's length and checksum fields are rewritten to fit it first, so the checks
//! behind the checksums (JSON, tensor table, graph, shapes) are fuzzed too. An accepted
//! engine is run once on a zero input of its declared shape.
#![no_main]
use edgedistill::engine::format::EngineFile;
use edgedistill::io::checksum::fnv1a64;
use libfuzzer_sys::fuzz_target;

fn reseal(data: &[u8]) -> Vec<u8> {
    let mut b = data.to_vec();
    if b.len() < 64 {
        return b;
    }
    let hlen = (u32::from_le_bytes(b[12..16].try_into().unwrap()) as usize).min(b.len() - 64);
    b[12..16].copy_from_slice(&(hlen as u32).to_le_bytes());
    let off = (64 + hlen).div_ceil(64) * 64;
    b.resize(b.len().max(off), 0);
    for x in &mut b[64 + hlen..off] {
        *x = 0;
    }
    b[16..24].copy_from_slice(&(off as u64).to_le_bytes());
    let dlen = (b.len() - off) as u64;
    b[24..32].copy_from_slice(&dlen.to_le_bytes());
    let hs = fnv1a64(&b[64..64 + hlen]);
    let ds = fnv1a64(&b[off..]);
    b[32..40].copy_from_slice(&hs.to_le_bytes());
    b[40..48].copy_from_slice(&ds.to_le_bytes());
    b
}

fuzz_target!(|data: &[u8]| {
    let bytes = if data.first().is_some_and(|b| b & 1 == 1) {
        reseal(data)
    } else {
        data.to_vec()
    };
    if let Ok(f) = EngineFile::from_bytes(&bytes) {
        let shape = f.header().input.shape.clone();
        if shape.iter().product::<usize>() <= 1 << 20 {
            let x = edgedistill::Tensor::zeros(shape, edgedistill::DType::F32);
            let _ = edgedistill::engine::exec::run(f.graph(), &f, &x);
        }
    }
});
