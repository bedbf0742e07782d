//! The library's embedded word lists must be the official ones, byte for byte.

#[test]
fn embedded_wordlists_equal_fixtures() {
    assert_eq!(
        include_str!("../src/wordlists/bip39_english.txt"),
        include_str!("fixtures/bip39_english.txt")
    );
    assert_eq!(
        include_str!("../src/wordlists/slip39.txt"),
        include_str!("fixtures/slip39_wordlist.txt")
    );
    let bip39: Vec<&str> = include_str!("fixtures/bip39_english.txt").lines().collect();
    let slip39: Vec<&str> = include_str!("fixtures/slip39_wordlist.txt")
        .lines()
        .collect();
    assert_eq!(trove_recovery::bip39::wordlist(), bip39.as_slice());
    assert_eq!(trove_recovery::slip39::wordlist(), slip39.as_slice());
}
