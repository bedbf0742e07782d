//! The estimated probability of losing data within a year (placeholder:
//! being written).
