//! The RS1024 checksum of SLIP-39: a Reed-Solomon code over GF(1024) that
//! guarantees detection of any error affecting at most 3 words. The
//! customization string ties the checksum to the share format, so a share
//! with its extendable flag flipped does not verify.

/// Number of checksum words at the end of every share.
pub(crate) const CHECKSUM_WORDS: usize = 3;

const GENERATOR: [u32; 10] = [
    0x00E0_E040,
    0x01C1_C080,
    0x0383_8100,
    0x0707_0200,
    0x0E0E_0009,
    0x1C0C_2412,
    0x3808_6C24,
    0x3090_FC48,
    0x21B1_F890,
    0x03F3_F120,
];

/// The customization string for shares with the given extendable flag.
pub(crate) fn customization(extendable: bool) -> &'static [u8] {
    if extendable {
        b"shamir_extendable"
    } else {
        b"shamir"
    }
}

fn polymod(values: impl IntoIterator<Item = u32>) -> u32 {
    let mut chk = 1u32;
    for value in values {
        let top = chk >> 20;
        chk = ((chk & 0xF_FFFF) << 10) ^ value;
        for (i, generator) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= generator;
            }
        }
    }
    chk
}

fn values<'a>(customization: &'a [u8], words: &'a [u16]) -> impl Iterator<Item = u32> + 'a {
    customization
        .iter()
        .map(|&b| u32::from(b))
        .chain(words.iter().map(|&w| u32::from(w)))
}

/// The three checksum words for `words` (a share without its checksum).
pub(crate) fn create(customization: &[u8], words: &[u16]) -> [u16; CHECKSUM_WORDS] {
    let padded = values(customization, words).chain([0; CHECKSUM_WORDS]);
    let checksum = polymod(padded) ^ 1;
    // Each word is 10 bits, so the casts cannot truncate.
    [2, 1, 0].map(|i| ((checksum >> (10 * i)) & 0x3FF) as u16)
}

/// Whether `words` (a whole share, checksum included) has a valid checksum.
pub(crate) fn verify(customization: &[u8], words: &[u16]) -> bool {
    polymod(values(customization, words)) == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_verify() {
        for extendable in [false, true] {
            let custom = customization(extendable);
            let mut words: Vec<u16> = (0..17).map(|i| (i * 61) % 1024).collect();
            let checksum = create(custom, &words);
            words.extend(checksum);
            assert!(verify(custom, &words));
            assert!(!verify(customization(!extendable), &words));
            // Any single-word error is detected.
            for i in 0..words.len() {
                let mut bad = words.clone();
                bad[i] ^= 0x155;
                assert!(!verify(custom, &bad));
            }
        }
    }
}
