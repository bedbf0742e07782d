//! Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted
//! Files and Communication with PURBs", 2019): rounds a length up so that it
//! leaks O(log log L) bits instead of O(log L), at most 12% overhead. Packs are
//! padded so their length says little about the chunks inside.

/// The Padmé length for `len` (>= `len`).
pub fn padme(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    let e = 63 - len.leading_zeros() as u64; // floor(log2 len)
    let s = 64 - e.leading_zeros() as u64; // floor(log2 e) + 1
    let z = e - s; // low bits to clear
    let mask = (1u64 << z) - 1;
    (len + mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padme_bounds() {
        for len in (0..100_000u64).chain([16 << 20, (16 << 20) + 12345, u32::MAX as u64]) {
            let p = padme(len);
            assert!(p >= len);
            assert!(p - len <= len / 8 + 1, "{len} -> {p}");
        }
        assert_eq!(padme(9), 10);
        // Lengths differing only in low bits collapse into one bucket.
        assert_eq!(padme(16_000_001), padme(16_000_100));
    }
}
