//! Training: the loop, checkpoints, resume, early stopping, metrics log.
