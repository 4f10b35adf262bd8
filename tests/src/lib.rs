//! Helpers for the cross-process tests.
