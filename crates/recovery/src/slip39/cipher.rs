//! SLIP-39's passphrase encryption of the master secret: a 4-round Feistel
//! network whose round function is PBKDF2-HMAC-SHA256. The passphrase is
//! the key, so every passphrase decrypts a set of shares to *some* secret;
//! a wrong one is indistinguishable from a right one here (that is the
//! spec's plausible-deniability feature), and Trove must verify the
//! recovered master secret against its repository.

use sha2::Sha256;
use zeroize::Zeroizing;

const ROUNDS: u8 = 4;
/// PBKDF2 iterations for the whole cipher at iteration exponent 0.
const BASE_ITERATIONS: u32 = 10_000;

/// Salt of the round function: `"shamir" || identifier` (big endian), or
/// empty for extendable backups, so that their encrypted master secret does
/// not depend on the identifier and further share sets (with new
/// identifiers) can be made from it without knowing the passphrase.
fn salt(identifier: u16, extendable: bool) -> Vec<u8> {
    if extendable {
        Vec::new()
    } else {
        let mut salt = b"shamir".to_vec();
        salt.extend_from_slice(&identifier.to_be_bytes());
        salt
    }
}

/// `half ^= PBKDF2(round || passphrase, salt || other, iterations)`.
fn round(i: u8, passphrase: &[u8], iterations: u32, salt: &[u8], other: &[u8], half: &mut [u8]) {
    let mut password = Zeroizing::new(Vec::with_capacity(1 + passphrase.len()));
    password.push(i);
    password.extend_from_slice(passphrase);
    let mut round_salt = Zeroizing::new(Vec::with_capacity(salt.len() + other.len()));
    round_salt.extend_from_slice(salt);
    round_salt.extend_from_slice(other);
    let mut key = Zeroizing::new(vec![0u8; half.len()]);
    pbkdf2::pbkdf2_hmac::<Sha256>(&password, &round_salt, iterations, &mut key);
    for (h, k) in half.iter_mut().zip(key.iter()) {
        *h ^= k;
    }
}

/// Runs the Feistel network with the given round order. The input is split
/// into halves L, R; each round sets (L, R) ← (R, L ⊕ F(R)); the output is
/// R || L, which makes decryption the same network with the rounds reversed.
fn feistel(
    input: &[u8],
    passphrase: &[u8],
    iteration_exponent: u8,
    identifier: u16,
    extendable: bool,
    rounds: impl Iterator<Item = u8>,
) -> Zeroizing<Vec<u8>> {
    // Callers guarantee an even length and an exponent of at most 15, so the
    // shift cannot overflow: 10000 · 2^15 < 2^32.
    let iterations = (BASE_ITERATIONS << iteration_exponent) / u32::from(ROUNDS);
    let salt = salt(identifier, extendable);
    let half = input.len() / 2;
    let mut left = Zeroizing::new(input[..half].to_vec());
    let mut right = Zeroizing::new(input[half..].to_vec());
    for i in rounds {
        round(i, passphrase, iterations, &salt, &right, &mut left);
        std::mem::swap(&mut left, &mut right);
    }
    let mut output = Zeroizing::new(Vec::with_capacity(input.len()));
    output.extend_from_slice(&right);
    output.extend_from_slice(&left);
    output
}

/// Encrypts the master secret into the "encrypted master secret" that is shared.
pub(crate) fn encrypt(
    master_secret: &[u8],
    passphrase: &[u8],
    iteration_exponent: u8,
    identifier: u16,
    extendable: bool,
) -> Zeroizing<Vec<u8>> {
    feistel(
        master_secret,
        passphrase,
        iteration_exponent,
        identifier,
        extendable,
        0..ROUNDS,
    )
}

/// Decrypts a recovered encrypted master secret.
pub(crate) fn decrypt(
    encrypted: &[u8],
    passphrase: &[u8],
    iteration_exponent: u8,
    identifier: u16,
    extendable: bool,
) -> Zeroizing<Vec<u8>> {
    feistel(
        encrypted,
        passphrase,
        iteration_exponent,
        identifier,
        extendable,
        (0..ROUNDS).rev(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypt_inverts_encrypt() {
        let secret: Vec<u8> = (0..16).collect();
        for extendable in [false, true] {
            let encrypted = encrypt(&secret, b"TREZOR", 0, 7, extendable);
            assert_ne!(*encrypted, secret);
            assert_eq!(*decrypt(&encrypted, b"TREZOR", 0, 7, extendable), secret);
            assert_ne!(*decrypt(&encrypted, b"TREZOS", 0, 7, extendable), secret);
        }
        // The identifier is part of the key only for non-extendable backups.
        let a = encrypt(&secret, b"", 0, 1, false);
        let b = encrypt(&secret, b"", 0, 2, false);
        assert_ne!(a, b);
        let a = encrypt(&secret, b"", 0, 1, true);
        let b = encrypt(&secret, b"", 0, 2, true);
        assert_eq!(a, b);
    }
}
