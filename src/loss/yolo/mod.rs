//! ultralytics v8DetectionLoss / v8SegmentationLoss: TAL assigner, CIoU, DFL, BCE, mask BCE.
