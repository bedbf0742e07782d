//! What can go wrong with inheritance, each naming the object, the cause
//! and the next step (the CLI prints these unchanged).

use std::path::PathBuf;

/// An inheritance operation that could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InheritError {
    /// No node peer to hold an escrow.
    #[error("no node peers to be custodians: inheritance escrows live on Trove nodes; add one with `trove peer add NAME TICKET`")]
    NoCustodians,
    /// `--custodians` named a peer that is not a node.
    #[error("peer `{0}` is not a node peer: only Trove nodes can hold an escrow and wait out a claim; name node peers (see `trove peer list`)")]
    NotANode(String),
    /// More custodians than SLIP-39 has shares.
    #[error(
        "{0} custodians: a SLIP-39 set has at most 16 shares; name at most 16 with --custodians"
    )]
    TooManyCustodians(usize),
    /// A threshold that does not fit the custodians.
    #[error("threshold {threshold} does not fit {custodians} custodian(s): give 1 to {custodians} (default: a majority, at least 2)")]
    BadThreshold { threshold: u8, custodians: usize },
    /// The heir is the owner.
    #[error("the heir is this identity's own owner id: give the id `trove whoami` prints on the heir's machine")]
    HeirIsSelf,
    /// Some custodians did not take their escrow.
    #[error("{failed} of {total} custodian(s) did not store their escrow ({details}); the letter was not written{}: make them reachable and run `trove inherit setup` again (it replaces every escrow with a new set)", if .left_behind.is_empty() { ", and the escrows the others stored were deleted again".to_owned() } else { format!("; the escrows stored on {} could not be deleted again ({})", .left_behind.len(), .left_behind.join("; ")) })]
    SetupIncomplete {
        failed: usize,
        total: usize,
        details: String,
        /// Custodians that stored their escrow and could not delete it
        /// again (the next setup replaces it).
        left_behind: Vec<String>,
    },
    /// The heir's letter cannot be read.
    #[error("inheritance letter {}: {reason}; ask the owner for the letter `trove inherit setup` wrote (pass it with --letter FILE)", .path.display())]
    Letter { path: PathBuf, reason: String },
    /// The letter is for another owner than the one asked for.
    #[error("the letter {} is for owner {letter_owner}, not {asked}: pass the letter of that owner with --letter FILE", .path.display())]
    LetterForAnother {
        path: PathBuf,
        letter_owner: String,
        asked: String,
    },
    /// Every custodian refused or was unreachable for a claim.
    #[error("no custodian recorded the claim: {0}")]
    NoClaimRecorded(String),
    /// Collect found too few released shares.
    #[error(
        "only {have} of the {need} shares needed are released ({need_more} more needed): {details}"
    )]
    NotReleased {
        have: usize,
        need: usize,
        need_more: usize,
        details: String,
    },
    /// The released shares did not give the owner's master secret.
    #[error("the released shares do not rebuild owner {owner}'s identity ({reason}); nothing was created; tell the owner's custodians")]
    WrongSecret { owner: String, reason: String },
    /// Collect into a home that already holds an identity.
    #[error("{} already holds a Trove identity; collect into a new, empty folder (--into)", .0.display())]
    IntoNotEmpty(PathBuf),
    /// SLIP-39 splitting failed.
    #[error("splitting the master secret: {0}")]
    Split(#[from] trove_recovery::Slip39Error),
    /// Sealing to the heir failed.
    #[error("sealing to the heir: {0}")]
    Seal(#[from] trove_core::escrow::EscrowShareError),
}

impl InheritError {
    /// The user's input is at fault (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            InheritError::NoCustodians
                | InheritError::NotANode(_)
                | InheritError::TooManyCustodians(_)
                | InheritError::BadThreshold { .. }
                | InheritError::HeirIsSelf
                | InheritError::LetterForAnother { .. }
                | InheritError::IntoNotEmpty(_)
        )
    }
}
