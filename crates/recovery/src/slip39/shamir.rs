//! SLIP-39's Shamir secret sharing of one byte string: a random polynomial
//! through the secret at x = 255 and a "digest share" at x = 254, whose
//! first 4 bytes are an HMAC of the secret keyed by the rest of that share.
//! Recovering the digest share along with the secret lets a wrong or
//! mismatched set of shares be detected instead of yielding garbage.

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::gf256::interpolate;

/// x coordinate of the shared secret.
const SECRET_INDEX: u8 = 255;
/// x coordinate of the digest share.
const DIGEST_INDEX: u8 = 254;
/// Length of the digest at the start of the digest share.
pub(crate) const DIGEST_LEN: usize = 4;

/// One point of the polynomial: (x, y), y a byte string.
pub(crate) type RawShare = (u8, Zeroizing<Vec<u8>>);

fn digest(random_part: &[u8], secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(random_part)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(secret);
    mac
}

/// Splits `secret` into `count` shares, any `threshold` of which recover it.
/// The caller checks 1 ≤ threshold ≤ count ≤ 16 and `secret.len() ≥ 16`.
pub(crate) fn split<R: RngCore + CryptoRng>(
    threshold: u8,
    count: u8,
    secret: &[u8],
    rng: &mut R,
) -> Vec<RawShare> {
    // With threshold 1 every share *is* the secret; there is no polynomial
    // and no digest (as the spec says).
    if threshold == 1 {
        return (0..count)
            .map(|i| (i, Zeroizing::new(secret.to_vec())))
            .collect();
    }
    // threshold − 2 random points plus the digest and secret points fix a
    // polynomial of degree threshold − 1; the remaining shares are read off it.
    let random_count = threshold - 2;
    let mut shares: Vec<RawShare> = (0..random_count)
        .map(|i| {
            let mut y = Zeroizing::new(vec![0u8; secret.len()]);
            rng.fill_bytes(&mut y);
            (i, y)
        })
        .collect();
    let mut digest_share = Zeroizing::new(vec![0u8; secret.len()]);
    rng.fill_bytes(&mut digest_share[DIGEST_LEN..]);
    let tag = digest(&digest_share[DIGEST_LEN..], secret)
        .finalize()
        .into_bytes();
    digest_share[..DIGEST_LEN].copy_from_slice(&tag[..DIGEST_LEN]);

    let mut base: Vec<(u8, &[u8])> = shares.iter().map(|(x, y)| (*x, y.as_slice())).collect();
    base.push((DIGEST_INDEX, &digest_share));
    base.push((SECRET_INDEX, secret));
    let derived: Vec<RawShare> = (random_count..count)
        .map(|x| (x, interpolate(&base, x)))
        .collect();
    shares.extend(derived);
    shares
}

/// Recovers the secret from exactly `threshold` shares with distinct x and
/// equal lengths (the caller checks). `None` means the digest did not match:
/// the shares do not all belong to the same split.
pub(crate) fn recover(threshold: u8, shares: &[(u8, &[u8])]) -> Option<Zeroizing<Vec<u8>>> {
    if threshold == 1 {
        return shares.first().map(|(_, y)| Zeroizing::new(y.to_vec()));
    }
    let secret = interpolate(shares, SECRET_INDEX);
    let digest_share = interpolate(shares, DIGEST_INDEX);
    // Constant-time comparison of the truncated tag.
    digest(&digest_share[DIGEST_LEN..], &secret)
        .verify_truncated_left(&digest_share[..DIGEST_LEN])
        .ok()?;
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_threshold_subset_recovers() {
        let secret: Vec<u8> = (100..132).collect();
        let mut rng = rand::thread_rng();
        for threshold in 1..=5u8 {
            let count = if threshold == 1 { 1 } else { threshold + 2 };
            let shares = split(threshold, count, &secret, &mut rng);
            assert_eq!(shares.len(), usize::from(count));
            // Sliding windows of `threshold` consecutive shares.
            for start in 0..=(count - threshold) {
                let subset: Vec<(u8, &[u8])> = shares
                    [usize::from(start)..usize::from(start + threshold)]
                    .iter()
                    .map(|(x, y)| (*x, y.as_slice()))
                    .collect();
                assert_eq!(recover(threshold, &subset).as_deref(), Some(&secret));
            }
        }
    }

    #[test]
    fn tampered_share_fails_digest() {
        let secret = [9u8; 16];
        let mut shares = split(3, 3, &secret, &mut rand::thread_rng());
        shares[1].1[5] ^= 1;
        let subset: Vec<(u8, &[u8])> = shares.iter().map(|(x, y)| (*x, y.as_slice())).collect();
        assert!(recover(3, &subset).is_none());
    }
}
