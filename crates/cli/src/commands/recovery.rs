//! `trove recovery split | combine | verify | phrase | kit`: the master
//! secret as SLIP-39 shares held by people you trust, and the recovery kit.
//! The share-reading helpers here serve `trove recover` too.

use crate::context::{open_home, unlock, Out};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_recovery::{GroupSpec, SetShares, Share};
use trove_repo::Home;

#[derive(Subcommand)]
pub enum RecoveryCmd {
    /// Split the master secret into SLIP-39 shares (SLIP-39 passphrase: TROVE_SLIP39_PASSPHRASE).
    Split {
        #[arg(long, requires = "shares")]
        threshold: Option<u8>,
        #[arg(long, requires = "threshold")]
        shares: Option<u8>,
        /// e.g. "2 of: family 2-of-3, friends 3-of-5, my safe 1-of-1"
        #[arg(long, conflicts_with_all = ["threshold", "shares"])]
        groups: Option<String>,
        /// Write one file per share holder into this folder instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Combine shares and print the 24-word phrase (on the owner's own device).
    Combine {
        #[arg(long)]
        shares_file: Option<PathBuf>,
    },
    /// Drill: check that shares reach the threshold and rebuild this identity; prints no secret.
    Verify {
        #[arg(long)]
        shares_file: Option<PathBuf>,
    },
    /// Show the 24-word phrase again (asks the passphrase).
    Phrase,
    /// Write the recovery kit: fingerprint and how to reach each peer; no secrets.
    Kit {
        #[arg(long)]
        out: PathBuf,
    },
    /// Rotate the master secret (the phrase or too many shares were
    /// exposed): a new identity and owner id, every peer handed over to
    /// them, container keys re-wrapped and a new one added. Prints the new
    /// phrase. Run it again to finish a rotation that stopped.
    Rotate {
        /// Write the new 24-word phrase to this new file (0600) instead of printing it.
        #[arg(long)]
        phrase_file: Option<PathBuf>,
    },
}

pub fn run(cmd: RecoveryCmd, out: Out) -> Result<ExitCode> {
    match cmd {
        RecoveryCmd::Split {
            threshold,
            shares,
            groups,
            out: dir,
        } => split(threshold, shares, groups.as_deref(), dir.as_deref(), out),
        RecoveryCmd::Combine { shares_file } => combine_cmd(shares_file.as_deref(), out),
        RecoveryCmd::Verify { shares_file } => verify(shares_file.as_deref(), out),
        RecoveryCmd::Phrase => phrase(out),
        RecoveryCmd::Kit { out: path } => kit(&path, out),
        RecoveryCmd::Rotate { phrase_file } => super::rotate::run(phrase_file.as_deref(), out),
    }
}

/// The SLIP-39 passphrase (not the local one): empty unless set.
pub fn slip39_passphrase() -> String {
    std::env::var("TROVE_SLIP39_PASSPHRASE").unwrap_or_default()
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(share_lines(&text))
}

/// The non-empty lines of `text` that are not `#` comments, trimmed.
fn share_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Shares from a file, from piped stdin (all of it, as from a file), or
/// asked one by one on the terminal until the threshold is met. Whether the
/// shares fit together is for [`combine`] to say (it names their sets when
/// they are of several).
pub fn read_shares(file: Option<&Path>) -> Result<Vec<String>> {
    if let Some(f) = file {
        return read_lines(f);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading shares from stdin")?;
        return Ok(share_lines(&text));
    }
    let mut shares: Vec<String> = Vec::new();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("share {}: ", shares.len() + 1);
        std::io::stderr().flush()?;
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = trove_recovery::Share::from_mnemonic(line) {
            eprintln!("  not accepted: {e}");
            continue;
        }
        shares.push(line.to_owned());
        match trove_recovery::progress(&shares) {
            Ok(p) if p.is_complete() => break,
            Ok(p) => eprintln!("  {p}"),
            Err(e) => {
                shares.pop();
                eprintln!("  not accepted: {e}");
            }
        }
    }
    Ok(shares)
}

/// Combine shares into the master secret, saying precisely what is missing,
/// or which sets the shares come from when they are of several.
pub fn combine(shares: &[String]) -> Result<MasterSecret> {
    let parsed = trove_recovery::parse_shares(shares)?;
    let sets = trove_recovery::sets(&parsed);
    if sets.len() > 1 {
        bail!("{}", mixed_sets(shares, &parsed, &sets));
    }
    match trove_recovery::combine_master(shares, slip39_passphrase().as_bytes()) {
        Ok(m) => Ok(MasterSecret::from_bytes(m)),
        Err(e) if e.is_too_few() => {
            let p = trove_recovery::progress(shares)
                .map(|p| p.to_string())
                .unwrap_or_default();
            bail!("{e}\n{p}")
        }
        Err(e) => Err(e.into()),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What one set needs, from one of its shares.
fn set_needs(share: &Share) -> String {
    if share.group_count() == 1 {
        format!(
            "needs {}",
            plural(usize::from(share.member_threshold()), "share", "shares")
        )
    } else {
        format!(
            "needs {} of its {} groups complete",
            share.group_threshold(),
            share.group_count()
        )
    }
}

/// The shares of one set, and what they amount to on their own.
fn set_status(shares: &[String], set: &SetShares) -> (bool, String) {
    let own: Vec<&String> = set.positions.iter().map(|&i| &shares[i]).collect();
    match trove_recovery::progress(&own) {
        Ok(p) => (
            p.is_complete(),
            p.to_string().lines().collect::<Vec<_>>().join("; "),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// "shares from 2 different sets: 1a2b (3 shares), 7c8d (2 shares); …",
/// then one line per set.
fn mixed_sets(shares: &[String], parsed: &[Share], sets: &[SetShares]) -> String {
    let list: Vec<String> = sets
        .iter()
        .map(|s| {
            format!(
                "{} ({})",
                s.set,
                plural(s.positions.len(), "share", "shares")
            )
        })
        .collect();
    let mut text = format!(
        "shares from {} different sets: {}; a set needs enough shares of its own, and shares of \
         different sets never combine (each `trove recovery split` makes a new set): give the \
         shares of one set",
        sets.len(),
        list.join(", ")
    );
    for s in sets {
        let numbers: Vec<String> = s.positions.iter().map(|i| (i + 1).to_string()).collect();
        let (_, status) = set_status(shares, s);
        text.push_str(&format!(
            "\n  set {} (share{} {}): {}; {status}",
            s.set,
            if numbers.len() == 1 { "" } else { "s" },
            numbers.join(", "),
            set_needs(&parsed[s.positions[0]]),
        ));
    }
    text
}

/// Where the words that rebuild the master secret come from: the 24-word
/// phrase or SLIP-39 shares (`trove recover`, `trove drill`).
#[derive(clap::Args)]
pub struct WordsArgs {
    /// The 24-word phrase, in a file (else asked, or read from stdin).
    #[arg(long, conflicts_with_all = ["shares_file", "shares"])]
    phrase_file: Option<PathBuf>,
    /// SLIP-39 shares, one per line.
    #[arg(long)]
    shares_file: Option<PathBuf>,
    /// Read shares from stdin (or the terminal, one by one, until enough).
    #[arg(long)]
    shares: bool,
}

impl WordsArgs {
    /// The master secret the phrase or the shares rebuild.
    pub fn master(&self) -> Result<MasterSecret> {
        if self.shares_file.is_some() || self.shares {
            combine(&read_shares(self.shares_file.as_deref())?)
        } else {
            let phrase = phrase_from(self.phrase_file.as_deref())?;
            Ok(MasterSecret::from_bytes(trove_recovery::phrase_to_master(
                &phrase,
            )?))
        }
    }
}

pub fn phrase_from(file: Option<&Path>) -> Result<String> {
    if let Some(f) = file {
        return Ok(read_lines(f)?.join(" "));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password("24-word phrase: ").context("reading the phrase");
    }
    let mut s = String::new();
    stdin.lock().read_to_string(&mut s)?;
    Ok(s)
}

/// Parse "2 of: family 2-of-3, friends 3-of-5, my safe 1-of-1".
pub fn parse_groups(spec: &str) -> Result<(u8, Vec<(String, GroupSpec)>)> {
    let (t, rest) = spec
        .split_once("of:")
        .context("groups look like \"2 of: family 2-of-3, friends 3-of-5\"")?;
    let threshold: u8 = t
        .trim()
        .parse()
        .with_context(|| format!("`{}` is not a number of groups", t.trim()))?;
    let mut groups = Vec::new();
    for g in rest.split(',') {
        let g = g.trim();
        let (name, tn) = g
            .rsplit_once(' ')
            .with_context(|| format!("group `{g}` is not NAME T-of-N"))?;
        let (mt, mc) = tn
            .split_once("-of-")
            .with_context(|| format!("`{tn}` is not T-of-N"))?;
        groups.push((
            name.trim().to_owned(),
            GroupSpec {
                member_threshold: mt
                    .parse()
                    .with_context(|| format!("`{mt}` is not a number"))?,
                member_count: mc
                    .parse()
                    .with_context(|| format!("`{mc}` is not a number"))?,
            },
        ));
    }
    Ok((threshold, groups))
}

/// One share as `split` hands it out.
#[derive(serde::Serialize)]
struct ShareRow {
    group: String,
    member: usize,
    member_threshold: u8,
    member_count: u8,
    /// `None` when the shares went to files.
    mnemonic: Option<String>,
}

#[derive(serde::Serialize)]
struct SplitRow<'a> {
    fingerprint: String,
    /// The new set's identifier (4 hex digits): `verify` names it per share.
    set: String,
    group_threshold: u8,
    shares: Vec<ShareRow>,
    out: Option<&'a Path>,
}

/// `trove recovery split`.
fn split(
    threshold: Option<u8>,
    shares: Option<u8>,
    groups: Option<&str>,
    dir: Option<&Path>,
    out: Out,
) -> Result<ExitCode> {
    let (group_threshold, layout) = match (groups, threshold, shares) {
        (Some(g), None, None) => parse_groups(g)?,
        (None, Some(t), Some(n)) => (1, vec![("shares".to_owned(), GroupSpec { member_threshold: t, member_count: n })]),
        _ => bail!("give either --threshold T --shares N, or --groups \"2 of: family 2-of-3, friends 3-of-5\""),
    };
    let home = open_home()?;
    let owner = unlock(&home)?;
    let specs: Vec<GroupSpec> = layout.iter().map(|(_, s)| *s).collect();
    let sets = trove_recovery::split(
        owner.master.as_bytes(),
        slip39_passphrase().as_bytes(),
        group_threshold,
        &specs,
        true,
        1,
    )?;
    let fp = owner.public().fingerprint();
    let set = sets
        .first()
        .and_then(|g| g.first())
        .map(|s| s.set_id().to_string())
        .context("the split made no shares")?;
    let mut shares = Vec::new();
    for ((name, spec), set) in layout.iter().zip(&sets) {
        for (i, share) in set.iter().enumerate() {
            shares.push(ShareRow {
                group: name.clone(),
                member: i + 1,
                member_threshold: spec.member_threshold,
                member_count: spec.member_count,
                mnemonic: Some(share.to_mnemonic()),
            });
        }
    }
    if let Some(dir) = dir {
        // A full threshold of shares is the master secret: private folder
        // and files, whatever the umask.
        trove_peer::durable::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        for s in &mut shares {
            let safe: String = s
                .group
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let path = dir.join(format!("{safe}-{}.txt", s.member));
            let text = format!(
                "Trove recovery share — keep it private.\nidentity {fp}\nset {set} (only shares of the same set combine)\ngroup `{}`: share {} of {} (any {} of this group are needed; {group_threshold} of the {} groups are needed)\n\n{}\n",
                s.group,
                s.member,
                s.member_count,
                s.member_threshold,
                layout.len(),
                s.mnemonic.take().unwrap_or_default()
            );
            trove_peer::durable::create_new(&path, text.as_bytes(), None)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let row = SplitRow {
        fingerprint: fp,
        set,
        group_threshold,
        shares,
        out: dir,
    };
    out.emit(&row, |r| match r.out {
        Some(dir) => println!(
            "wrote {} share files of set {} to {} (one per holder)",
            r.shares.len(),
            r.set,
            dir.display()
        ),
        None => {
            println!(
                "SLIP-39 shares of identity {}, set {} (only shares of the same set combine); {} group(s) needed:",
                r.fingerprint, r.set, r.group_threshold
            );
            for s in &r.shares {
                println!(
                    "\n[{}] share {} of {} (any {} of this group)\n{}",
                    s.group,
                    s.member,
                    s.member_count,
                    s.member_threshold,
                    s.mnemonic.as_deref().unwrap_or_default()
                );
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct Combined {
    phrase: String,
    fingerprint: String,
}

/// `trove recovery combine`: shares in, phrase out.
fn combine_cmd(file: Option<&Path>, out: Out) -> Result<ExitCode> {
    let master = combine(&read_shares(file)?)?;
    let row = Combined {
        phrase: trove_recovery::master_to_phrase(master.as_bytes()),
        fingerprint: master.identity().public().fingerprint(),
    };
    out.emit(&row, |r| {
        println!("identity {}\n{}", r.fingerprint, r.phrase)
    })?;
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct Verified {
    ok: bool,
    shares: usize,
    identity: String,
    /// The identity the shares rebuild; `None` when they are of several sets.
    reconstructs: Option<String>,
    /// The sets the shares come from, in the order given (one when they fit).
    sets: Vec<SetRow>,
    /// What each share is, in the order given.
    share_info: Vec<ShareInfo>,
    /// Why the shares cannot be combined, when they are of several sets.
    problem: Option<String>,
}

/// One set among the shares given to `verify`.
#[derive(serde::Serialize)]
struct SetRow {
    set: String,
    shares: usize,
    /// Whether this set's shares alone reach its threshold.
    enough: bool,
}

/// One share given to `verify`; numbers count from 1.
#[derive(serde::Serialize)]
struct ShareInfo {
    share: usize,
    set: String,
    group: u8,
    group_threshold: u8,
    group_count: u8,
    member: u8,
    member_threshold: u8,
    iteration_exponent: u8,
}

impl ShareInfo {
    fn of(number: usize, s: &Share) -> Self {
        Self {
            share: number,
            set: s.set_id().to_string(),
            group: s.group_index() + 1,
            group_threshold: s.group_threshold(),
            group_count: s.group_count(),
            member: s.member_index() + 1,
            member_threshold: s.member_threshold(),
            iteration_exponent: s.iteration_exponent(),
        }
    }
}

fn print_share_info(rows: &[ShareInfo]) {
    for i in rows {
        println!(
            "share {}: set {}, group {} of {}, member {} (any {} of this group; {} of the groups needed)",
            i.share,
            i.set,
            i.group,
            i.group_count,
            i.member,
            i.member_threshold,
            i.group_threshold
        );
    }
}

/// `trove recovery verify`: a drill that never prints the secret.
fn verify(file: Option<&Path>, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let mine = home.public_identity()?;
    let shares = read_shares(file)?;
    let parsed = trove_recovery::parse_shares(&shares)?;
    let sets = trove_recovery::sets(&parsed);
    let share_info: Vec<ShareInfo> = parsed
        .iter()
        .enumerate()
        .map(|(i, s)| ShareInfo::of(i + 1, s))
        .collect();
    let set_rows: Vec<SetRow> = sets
        .iter()
        .map(|s| SetRow {
            set: s.set.to_string(),
            shares: s.positions.len(),
            enough: set_status(&shares, s).0,
        })
        .collect();
    if sets.len() > 1 {
        let row = Verified {
            ok: false,
            shares: shares.len(),
            identity: mine.fingerprint(),
            reconstructs: None,
            sets: set_rows,
            share_info,
            problem: Some(mixed_sets(&shares, &parsed, &sets)),
        };
        out.emit(&row, |r| {
            print_share_info(&r.share_info);
            println!("MIXED SETS: {}", r.problem.as_deref().unwrap_or_default());
        })?;
        return Ok(ExitCode::from(1));
    }
    let theirs = combine(&shares)?.identity().public();
    let row = Verified {
        ok: theirs == mine,
        shares: shares.len(),
        identity: mine.fingerprint(),
        reconstructs: Some(theirs.fingerprint()),
        sets: set_rows,
        share_info,
        problem: None,
    };
    out.emit(&row, |r| {
        print_share_info(&r.share_info);
        let set = r.sets.first().map(|s| s.set.as_str()).unwrap_or_default();
        if r.ok {
            println!(
                "OK: these {} shares of set {set} reconstruct this identity ({})",
                r.shares, r.identity
            );
        } else {
            println!(
                "MISMATCH: these shares of set {set} reconstruct identity {}, not this one ({}): shares of another secret, or a wrong SLIP-39 passphrase (TROVE_SLIP39_PASSPHRASE)",
                r.reconstructs.as_deref().unwrap_or_default(),
                r.identity
            );
        }
    })?;
    Ok(if row.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(serde::Serialize)]
struct Phrase {
    phrase: String,
}

/// `trove recovery phrase`.
fn phrase(out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let row = Phrase {
        phrase: trove_recovery::master_to_phrase(owner.master.as_bytes()),
    };
    out.emit(&row, |r| println!("{}", r.phrase))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(serde::Serialize)]
struct KitRow<'a> {
    out: &'a Path,
    fingerprint: String,
    peers: usize,
    containers: usize,
}

/// `trove recovery kit`: what to print and keep with the phrase; no secrets.
fn kit(path: &Path, out: Out) -> Result<ExitCode> {
    let home = open_home()?;
    let ids = Home::peek_ids(home.dir())?;
    let peers = home.peers().records()?;
    let containers = home.containers().manifests()?;
    let mut t = String::new();
    t.push_str("TROVE RECOVERY KIT — keep with your 24-word phrase (or your share holders' names).\nThis sheet holds no secret.\n\n");
    t.push_str(&format!(
        "Identity fingerprint: {}\nIdentity key (signs your manifests): {}\nOwner id (what node operators grant; `trove whoami`): {}\n\n",
        ids.identity.fingerprint(),
        ids.identity.to_hex(),
        ids.owner_id
            .as_deref()
            .unwrap_or("unknown until a command unlocks this home once")
    ));
    t.push_str("Peers (any one that survives is enough to start):\n");
    for p in &peers {
        let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        t.push_str(&format!(
            "  - {:<12} {}  {}\n",
            p.name,
            p.location,
            labels.join(" ")
        ));
    }
    t.push_str("\nContainers:\n");
    for c in &containers {
        t.push_str(&format!(
            "  - {:<12} {} sources: {}\n",
            c.name,
            c.redundancy,
            c.sources.join(", ")
        ));
    }
    t.push_str(
        "\nTo recover on a new machine:\n  1. trove recover            (type the 24 words, or --shares-file with enough shares)\n  2. trove peer add NAME dir:PATH   (any surviving peer above)\n  3. trove sync               (finds the containers, snapshots and the other peers)\n  4. trove restore CONTAINER:latest --target DIR\n",
    );
    trove_peer::durable::replace(path, t.as_bytes(), None)
        .with_context(|| format!("writing {}", path.display()))?;
    let row = KitRow {
        out: path,
        fingerprint: ids.identity.fingerprint(),
        peers: peers.len(),
        containers: containers.len(),
    };
    out.emit(&row, |r| {
        println!(
            "wrote the recovery kit to {} — print it and keep it with the phrase",
            r.out.display()
        )
    })?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn group_spec_parses() {
        let (t, g) =
            super::parse_groups("2 of: family 2-of-3, friends 3-of-5, my safe 1-of-1").unwrap();
        assert_eq!(t, 2);
        assert_eq!(g.len(), 3);
        assert_eq!(g[2].0, "my safe");
        assert_eq!((g[1].1.member_threshold, g[1].1.member_count), (3, 5));
        assert!(super::parse_groups("family 2-of-3").is_err());
        assert!(super::parse_groups("2 of: family two-of-3").is_err());
    }
}
