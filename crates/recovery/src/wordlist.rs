//! The two embedded word lists and the word lookup shared by BIP-39 and
//! SLIP-39: case-insensitive matching, 1-based positions and "did you mean"
//! suggestions for words that are not on the list.

use std::sync::OnceLock;

const BIP39_TEXT: &str = include_str!("wordlists/bip39_english.txt");
const SLIP39_TEXT: &str = include_str!("wordlists/slip39.txt");

// Word indices are 11 and 10 bits wide and are used to index these lists, so
// a truncated copy must fail the build rather than panic at run time.
const _: () = assert!(count_lines(BIP39_TEXT) == 2048);
const _: () = assert!(count_lines(SLIP39_TEXT) == 1024);

const fn count_lines(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut lines = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            lines += 1;
        }
        i += 1;
    }
    lines
}

/// The BIP-39 English list (2048 words, sorted, unique in their first four letters).
pub(crate) static BIP39_ENGLISH: Wordlist = Wordlist::new(BIP39_TEXT);
/// The SLIP-39 list (1024 words, sorted, unique in their first four letters).
pub(crate) static SLIP39: Wordlist = Wordlist::new(SLIP39_TEXT);

/// A sorted word list, split into words on first use.
#[derive(Debug)]
pub(crate) struct Wordlist {
    text: &'static str,
    words: OnceLock<Vec<&'static str>>,
}

/// A word of a phrase that is not on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownWord {
    /// 1-based position of the word in the phrase.
    pub position: usize,
    /// The word as the user typed it (so they can find it on their paper).
    pub word: String,
    /// The list word the user probably meant, if there is a clear candidate.
    pub suggestion: Option<String>,
}

impl Wordlist {
    const fn new(text: &'static str) -> Self {
        Self {
            text,
            words: OnceLock::new(),
        }
    }

    /// All words, in list (= index) order.
    pub(crate) fn words(&self) -> &[&'static str] {
        self.words.get_or_init(|| self.text.lines().collect())
    }

    /// The word with index `index`; callers pass indices of the list's bit
    /// width, which the const assertions above guarantee are in range.
    pub(crate) fn word(&self, index: u16) -> &'static str {
        self.words()[usize::from(index)]
    }

    /// Index of an already lower-cased word.
    fn index_of(&self, lowercase: &str) -> Option<u16> {
        // Both lists are sorted (checked by the tests), so binary search works.
        let index = self.words().binary_search(&lowercase).ok()?;
        u16::try_from(index).ok()
    }

    /// Splits `phrase` on any whitespace and maps each word, case-insensitively,
    /// to its index. Reports the first word that is not on the list.
    pub(crate) fn to_indices(&self, phrase: &str) -> Result<Vec<u16>, UnknownWord> {
        phrase
            .split_whitespace()
            .enumerate()
            .map(|(i, word)| {
                let lowercase = word.to_lowercase();
                self.index_of(&lowercase).ok_or_else(|| UnknownWord {
                    position: i + 1,
                    word: word.to_owned(),
                    suggestion: self.suggest(&lowercase).map(str::to_owned),
                })
            })
            .collect()
    }

    /// The word the user most likely meant by `typed` (lower-cased): the one
    /// sharing its first four letters (unique by design of both lists), or
    /// failing that the single closest word within two edits, which catches
    /// typos in the first letters and the short three-letter BIP-39 words.
    fn suggest(&self, typed: &str) -> Option<&'static str> {
        let prefix: String = typed.chars().take(4).collect();
        if prefix.chars().count() == 4 {
            if let Some(word) = self.words().iter().find(|w| w.starts_with(&prefix)) {
                return Some(word);
            }
        }
        // Two words' edit distance is at least the difference of their
        // lengths, so only words within two letters of the typed length can
        // be suggested: a long pasted "word" is not compared letter by
        // letter with every word of the list.
        let typed_len = typed.chars().count();
        let mut best: Option<(usize, &'static str)> = None;
        let mut tied = false;
        for &word in self.words() {
            if typed_len.abs_diff(word.len()) > 2 {
                continue;
            }
            let distance = edit_distance(typed, word);
            match best {
                Some((d, _)) if distance > d => {}
                Some((d, _)) if distance == d => tied = true,
                _ => {
                    best = Some((distance, word));
                    tied = false;
                }
            }
        }
        match best {
            Some((distance, word)) if distance <= 2 && !tied => Some(word),
            _ => None,
        }
    }
}

/// Levenshtein distance between two short words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, &cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != cb);
            let insert = current[j] + 1;
            let delete = previous[j + 1] + 1;
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_and_unique_by_four_letters() {
        for (list, len) in [(&BIP39_ENGLISH, 2048), (&SLIP39, 1024)] {
            let words = list.words();
            assert_eq!(words.len(), len);
            assert!(words.windows(2).all(|w| w[0] < w[1]), "sorted");
            let mut prefixes: Vec<String> =
                words.iter().map(|w| w.chars().take(4).collect()).collect();
            prefixes.dedup();
            assert_eq!(prefixes.len(), len, "unique in the first four letters");
            assert!(words
                .iter()
                .all(|w| w.bytes().all(|b| b.is_ascii_lowercase())));
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_whitespace_tolerant() {
        let indices = BIP39_ENGLISH
            .to_indices("  Abandon\tABILITY\n\n zoo ")
            .expect("valid words");
        assert_eq!(indices, vec![0, 1, 2047]);
    }

    #[test]
    fn suggestions() {
        let err = BIP39_ENGLISH.to_indices("abandon abilty").unwrap_err();
        assert_eq!(err.position, 2);
        assert_eq!(err.word, "abilty");
        assert_eq!(err.suggestion.as_deref(), Some("ability"));
        // Typo in the first four letters: falls back to edit distance.
        let err = SLIP39.to_indices("xcademic").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("academic"));
        // Nothing close.
        let err = SLIP39.to_indices("xxxxxxxxxxxx").unwrap_err();
        assert_eq!(err.suggestion, None);
    }

    /// Found by `tests/decoders_on_garbage.rs` (which took 158 s): an
    /// unknown word was compared by edit distance with all 2048 list words,
    /// at a cost proportional to its length, so a 20 000-letter "word" (a
    /// pasted line) took 11 s in a debug build. Words more than two letters
    /// longer than any list word have no suggestion and are no longer
    /// compared at all.
    #[test]
    fn long_unknown_word_is_not_compared_with_every_word() {
        // (How long it takes is measured, not asserted: the garbage harness
        // shows it, 158 s before, 1 s after.)
        let long = "x".repeat(20_000);
        let err = BIP39_ENGLISH.to_indices(&long).unwrap_err();
        assert_eq!(err.suggestion, None);
        // Typos in the first letters are still found by edit distance.
        let err = BIP39_ENGLISH.to_indices("xbandonn").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("abandon"));
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
