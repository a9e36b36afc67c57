//! Generated instance-segmentation datasets (the demo's data).
