//! Conversions between bytes and fixed-width words (11 bits for BIP-39, 10
//! for SLIP-39), most significant bit first. Done one bit at a time: the
//! inputs are a few dozen bytes, and this is the version that is obviously
//! right. The intermediate bit vectors hold secret material, so they are
//! zeroized.

use zeroize::Zeroizing;

/// The bits of `bytes`, one per element, most significant first.
pub(crate) fn bytes_to_bits(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut bits = Zeroizing::new(Vec::with_capacity(bytes.len() * 8));
    for byte in bytes {
        bits.extend((0..8).rev().map(|i| (byte >> i) & 1));
    }
    bits
}

/// The bits of `words`, each `width` bits wide, one per element.
pub(crate) fn words_to_bits(words: &[u16], width: u32) -> Zeroizing<Vec<u8>> {
    let mut bits = Zeroizing::new(Vec::with_capacity(words.len() * width as usize));
    for word in words {
        // Truncation is intended: each bit is 0 or 1.
        bits.extend((0..width).rev().map(|i| ((word >> i) & 1) as u8));
    }
    bits
}

/// Packs bits into bytes. The caller passes a multiple of eight bits.
pub(crate) fn bits_to_bytes(bits: &[u8]) -> Zeroizing<Vec<u8>> {
    debug_assert_eq!(bits.len() % 8, 0);
    Zeroizing::new(
        bits.chunks(8)
            .map(|chunk| chunk.iter().fold(0u8, |acc, &bit| (acc << 1) | bit))
            .collect(),
    )
}

/// Groups bits into `width`-bit words. The caller passes a multiple of `width` bits.
pub(crate) fn bits_to_words(bits: &[u8], width: u32) -> Vec<u16> {
    debug_assert_eq!(bits.len() % width as usize, 0);
    bits.chunks(width as usize)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u16, |acc, &bit| (acc << 1) | u16::from(bit))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = [0xde, 0xad, 0xbe, 0xef, 0x01];
        let bits = bytes_to_bits(&bytes);
        assert_eq!(bits.len(), 40);
        let words = bits_to_words(&bits, 10);
        assert_eq!(
            words,
            vec![0b1101111010, 0b1011011011, 0b1110111011, 0b1100000001]
        );
        assert_eq!(*bits_to_bytes(&words_to_bits(&words, 10)), bytes);
    }
}
