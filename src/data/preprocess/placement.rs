//! Where the resized image sits inside the model input, and the box mappings between the
//! input tensor's pixels and the original image's pixels.
//!
//! Boxes are `[x0, y0, x1, y1]` in continuous pixel coordinates (a box over pixel columns
//! 0..w spans 0.0..w). The per-axis gain is `new / orig` of the *rounded* resized size, as
//! ultralytics' `scale_boxes` and transformers' SAM `_normalize_coordinates` use it.

/// Geometry of one preprocessed image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Original image size (displayed, i.e. EXIF orientation applied).
    pub orig_w: u32,
    pub orig_h: u32,
    /// Size the image was resized to (the content inside the input).
    pub new_w: u32,
    pub new_h: u32,
    /// Top-left corner of the content inside the input (letterbox padding; 0 for SAM/GDINO).
    pub left: u32,
    pub top: u32,
    /// Model input size (content plus padding).
    pub input_w: u32,
    pub input_h: u32,
}

impl Placement {
    /// `(gain_x, gain_y)` = resized / original per axis.
    pub fn gain(&self) -> (f64, f64) {
        (
            self.new_w as f64 / self.orig_w as f64,
            self.new_h as f64 / self.orig_h as f64,
        )
    }

    /// The content rectangle `[x0, y0, x1, y1]` in input pixels (end exclusive): crop a
    /// mask or feature map predicted on the input to this, then resize it to
    /// `orig_w`×`orig_h`, as ultralytics' `scale_masks` and SAM's `post_process_masks` do.
    pub fn content_rect(&self) -> [u32; 4] {
        [
            self.left,
            self.top,
            self.left + self.new_w,
            self.top + self.new_h,
        ]
    }

    /// A box in input pixels → original pixels, clipped to the image (ultralytics
    /// `scale_boxes` + `clip_boxes`).
    pub fn box_to_original(&self, b: [f32; 4]) -> [f32; 4] {
        let (gx, gy) = self.gain();
        let (l, t) = (self.left as f64, self.top as f64);
        let (w, h) = (self.orig_w as f64, self.orig_h as f64);
        [
            ((b[0] as f64 - l) / gx).clamp(0.0, w) as f32,
            ((b[1] as f64 - t) / gy).clamp(0.0, h) as f32,
            ((b[2] as f64 - l) / gx).clamp(0.0, w) as f32,
            ((b[3] as f64 - t) / gy).clamp(0.0, h) as f32,
        ]
    }

    /// A box in original pixels → input pixels (prompt boxes for SAM; training targets for
    /// the letterboxed student). Not clipped.
    pub fn box_to_input(&self, b: [f32; 4]) -> [f32; 4] {
        let (gx, gy) = self.gain();
        let (l, t) = (self.left as f64, self.top as f64);
        [
            (b[0] as f64 * gx + l) as f32,
            (b[1] as f64 * gy + t) as f32,
            (b[2] as f64 * gx + l) as f32,
            (b[3] as f64 * gy + t) as f32,
        ]
    }

    /// A box normalised to the content as `[cx, cy, w, h]` in 0..1 (Grounding DINO's
    /// `pred_boxes`) → original pixels `[x0, y0, x1, y1]`, as transformers'
    /// `post_process_object_detection` with `target_sizes` = the original size.
    pub fn normalized_cxcywh_to_original(&self, b: [f32; 4]) -> [f32; 4] {
        let (w, h) = (self.orig_w as f32, self.orig_h as f32);
        [
            (b[0] - 0.5 * b[2]) * w,
            (b[1] - 0.5 * b[3]) * h,
            (b[0] + 0.5 * b[2]) * w,
            (b[1] + 0.5 * b[3]) * h,
        ]
    }
}
