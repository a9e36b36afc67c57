//! Horizontal and vertical flips (ultralytics `RandomFlip`): pixels, masks and boxes mirror
//! together; with continuous box coordinates `x → w - x`, so `[x0, x1]` becomes
//! `[w - x1, w - x0]`. Nothing is ever removed.
use crate::data::Sample;
use image::imageops;

/// Mirror left-right.
pub fn flip_lr(mut s: Sample) -> Sample {
    let w = s.width() as f32;
    imageops::flip_horizontal_in_place(&mut s.image);
    for inst in &mut s.instances {
        let [x0, y0, x1, y1] = inst.bbox;
        inst.bbox = [w - x1, y0, w - x0, y1];
        if let Some(m) = &mut inst.mask {
            imageops::flip_horizontal_in_place(m);
        }
    }
    s
}

/// Mirror top-bottom.
pub fn flip_ud(mut s: Sample) -> Sample {
    let h = s.height() as f32;
    imageops::flip_vertical_in_place(&mut s.image);
    for inst in &mut s.instances {
        let [x0, y0, x1, y1] = inst.bbox;
        inst.bbox = [x0, h - y1, x1, h - y0];
        if let Some(m) = &mut inst.mask {
            imageops::flip_vertical_in_place(m);
        }
    }
    s
}
