//! Arbitrary bytes as a COCO file: `Coco::from_slice` returns Ok or Err and never panics;
//! an accepted file writes and reads back without problems, and planning its conversion
//! to YOLO (polygon joining, RLE decoding, clipping) never panics either.
#![no_main]
use edgedistill::data::Coco;
use edgedistill::data::convert::plan_coco_to_yolo;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok((coco, _problems)) = Coco::from_slice(data, "fuzz.json") {
        let bytes = coco.to_vec().expect("an accepted file writes");
        let (again, problems) = Coco::from_slice(&bytes, "again.json").expect("and reads back");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(again.images.len(), coco.images.len());
        assert_eq!(again.annotations.len(), coco.annotations.len());
        let _ = plan_coco_to_yolo(&coco, Path::new("fuzz.json"));
    }
});
