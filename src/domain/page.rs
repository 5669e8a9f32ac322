//! Pagination bounds, shared by every list.

use super::Invalid;

/// Rows per page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u64);

impl Limit {
    pub const MIN: u64 = 1;
    pub const MAX: u64 = 1000;
    pub const DEFAULT: Limit = Limit(100);

    pub fn new(n: u64) -> Result<Self, Invalid> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(Invalid::new(format!(
                "Must be between {} and {}.",
                Self::MIN,
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Rows skipped before the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offset(u64);

impl Offset {
    /// 10^15: beyond any list, and well within the integers every JSON
    /// client (and every floating-point schema validator) reads exactly.
    pub const MAX: u64 = 1_000_000_000_000_000;

    pub fn new(n: u64) -> Result<Self, Invalid> {
        if n <= Self::MAX {
            Ok(Self(n))
        } else {
            Err(Invalid::new(format!(
                "Must be between 0 and {}.",
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

/// A window onto a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Page {
    pub limit: Limit,
    pub offset: Offset,
}

impl Page {
    pub fn limit(self) -> u64 {
        self.limit.get()
    }

    pub fn offset(self) -> u64 {
        self.offset.get()
    }

    /// The page after this one, when rows remain after it in a list of `total`.
    pub fn next(self, total: u64) -> Option<Page> {
        let next = self.offset().saturating_add(self.limit());
        (next < total).then(|| Page {
            limit: self.limit,
            offset: Offset(next.min(Offset::MAX)),
        })
    }

    /// The page before this one, when this one is not the first.
    pub fn prev(self) -> Option<Page> {
        (self.offset() > 0).then(|| Page {
            limit: self.limit,
            offset: Offset(self.offset().saturating_sub(self.limit())),
        })
    }
}
