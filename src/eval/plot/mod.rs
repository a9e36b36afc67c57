//! A small SVG plotting module for the report: line charts, a heatmap for the confusion
//! matrix, and image tiles with boxes and masks overlaid. Output is plain SVG text (well-formed
//! XML, no scripts, no external references) so it can be inlined into a self-contained page.
mod encode;
mod heatmap;
mod image_tile;
mod line;
pub mod overlay_png;
mod svg;

pub use encode::{base64, png_data_uri};
pub use heatmap::Heatmap;
pub use image_tile::{ImageTile, Overlay, OverlayKind};
pub use line::{LineChart, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, Series};
pub use svg::{escape, fmt_num};

/// Line colours (matplotlib's tab10): distinct, readable on white.
pub const LINE_COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Class colours for boxes and masks: ultralytics' palette, so overlays look like the ones
/// users already know from its plots.
pub const CLASS_COLORS: [[u8; 3]; 20] = [
    [0xFF, 0x38, 0x38],
    [0xFF, 0x9D, 0x97],
    [0xFF, 0x70, 0x1F],
    [0xFF, 0xB2, 0x1D],
    [0xCF, 0xD2, 0x31],
    [0x48, 0xF9, 0x0A],
    [0x92, 0xCC, 0x17],
    [0x3D, 0xDB, 0x86],
    [0x1A, 0x93, 0x34],
    [0x00, 0xD4, 0xBB],
    [0x2C, 0x99, 0xA8],
    [0x00, 0xC2, 0xFF],
    [0x34, 0x45, 0x93],
    [0x64, 0x73, 0xFF],
    [0x00, 0x18, 0xEC],
    [0x84, 0x38, 0xFF],
    [0x52, 0x00, 0x85],
    [0xCB, 0x38, 0xFF],
    [0xFF, 0x95, 0xC8],
    [0xFF, 0x37, 0xC7],
];

/// The colour of class `i` as `#rrggbb`.
pub fn class_color(i: usize) -> String {
    let [r, g, b] = CLASS_COLORS[i % CLASS_COLORS.len()];
    format!("#{r:02x}{g:02x}{b:02x}")
}
