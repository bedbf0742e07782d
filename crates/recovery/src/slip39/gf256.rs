//! Arithmetic in GF(2^8) with the Rijndael polynomial x^8 + x^4 + x^3 + x + 1,
//! as SLIP-39 specifies, and Lagrange interpolation of byte-string shares.
//!
//! Multiplication is done bit by bit without branches or table lookups, so
//! its timing does not depend on the (secret) share bytes; the reference
//! implementation's log/exp tables would be indexed by secret data.

use zeroize::Zeroizing;

/// Product of `a` and `b` in GF(256), in constant time.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        // All-ones mask when the low bit of b is set.
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1B & carry);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse, as a^254 (a^255 = 1 for a ≠ 0). Only applied to
/// differences of share indices, which are public and never zero.
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exponent = 254u8;
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exponent >>= 1;
    }
    result
}

/// Evaluates at `x` the polynomial of lowest degree passing through the
/// points `(xᵢ, yᵢ)`, byte by byte. The `xᵢ` must be distinct and the `yᵢ`
/// of equal length (the callers check both).
pub(crate) fn interpolate(points: &[(u8, &[u8])], x: u8) -> Zeroizing<Vec<u8>> {
    let len = points.first().map_or(0, |(_, y)| y.len());
    let mut result = Zeroizing::new(vec![0u8; len]);
    for (i, &(xi, yi)) in points.iter().enumerate() {
        // Lagrange basis polynomial i at x: Π_{j≠i} (x − xⱼ) / (xᵢ − xⱼ);
        // subtraction is XOR in characteristic 2.
        let basis = points
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .fold(1u8, |acc, (_, &(xj, _))| {
                mul(acc, mul(x ^ xj, inv(xi ^ xj)))
            });
        for (r, &y) in result.iter_mut().zip(yi) {
            *r ^= mul(basis, y);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_axioms() {
        // 0x53 · 0xCA = 1 is the textbook AES example.
        assert_eq!(mul(0x53, 0xCA), 1);
        assert_eq!(inv(0x53), 0xCA);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
        }
    }

    #[test]
    fn interpolation_recovers_points_and_line() {
        // y = 7 + 3x, bytewise.
        let line = |x: u8| [7 ^ mul(3, x), 1 ^ mul(9, x)];
        let (a, b) = (line(1), line(2));
        let points = [(1, &a[..]), (2, &b[..])];
        for x in [0, 1, 2, 200, 254, 255] {
            assert_eq!(*interpolate(&points, x), line(x));
        }
    }
}
