//! The shared harness (tests/common), under the name this binary's tests use.

pub use crate::common::*;
