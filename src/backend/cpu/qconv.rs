//! INT8 convolution for the INT8 engine (being written; see the module contract below).
