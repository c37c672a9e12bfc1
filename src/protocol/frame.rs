//! The 12-byte packet header: a 4-letter ASCII token and a 32-bit value in 8 hex digits.
//!
//! CONTRACT placeholder: to be implemented.

/// Length of every packet header.
pub const HEADER_LEN: usize = 12;
