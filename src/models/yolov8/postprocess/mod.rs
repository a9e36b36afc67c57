//! From raw head outputs to boxes, scores, classes and masks (ultralytics NMS + process_mask).
