//! Audits (being written).
