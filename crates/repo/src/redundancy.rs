//! Redundancy (being written).
