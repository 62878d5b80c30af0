//! Memory bank (see issue 3).
pub mod sinkhorn;
pub mod coreset;
pub mod distance;
