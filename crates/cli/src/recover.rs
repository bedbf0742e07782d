//! Recovery commands: `trove recover` (a new home from the phrase or
//! SLIP-39 shares), `trove sync`, and `trove recovery split | combine |
//! verify | phrase | kit`.

use crate::{home_dir, open_home, passphrase, print_json, ui, unlock};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trove_core::keys::MasterSecret;
use trove_recovery::GroupSpec;
use trove_repo::{Home, KdfParams};

/// The SLIP-39 passphrase (not the local one): empty unless set.
fn slip39_passphrase() -> String {
    std::env::var("TROVE_SLIP39_PASSPHRASE").unwrap_or_default()
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect())
}

/// Shares from a file, or asked one by one until the threshold is met.
pub fn read_shares(file: Option<&Path>) -> Result<Vec<String>> {
    if let Some(f) = file {
        return read_lines(f);
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut shares: Vec<String> = Vec::new();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("share {}: ", shares.len() + 1);
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Err(e) = trove_recovery::Share::from_mnemonic(line) {
            if interactive {
                eprintln!("  not accepted: {e}");
                continue;
            }
            bail!("share {}: {e}", shares.len() + 1);
        }
        shares.push(line.to_owned());
        match trove_recovery::progress(&shares) {
            Ok(p) if p.is_complete() => break,
            Ok(p) if interactive => eprintln!("  {p}"),
            Ok(_) => {}
            Err(e) => {
                shares.pop();
                if interactive {
                    eprintln!("  not accepted: {e}");
                } else {
                    bail!("{e}");
                }
            }
        }
    }
    Ok(shares)
}

/// Combine shares into the master secret, saying precisely what is missing.
pub fn combine(shares: &[String]) -> Result<MasterSecret> {
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

fn phrase_from(file: Option<&Path>) -> Result<String> {
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

/// `trove recover`.
pub fn recover(
    phrase_file: Option<&Path>,
    shares_file: Option<&Path>,
    use_shares: bool,
    json: bool,
) -> Result<ExitCode> {
    let dir = home_dir()?;
    if dir.join("keyfile").exists() {
        bail!(
            "{} already holds a Trove identity; refusing to overwrite it (recover into an empty TROVE_HOME)",
            dir.display()
        );
    }
    let master = if shares_file.is_some() || use_shares {
        combine(&read_shares(shares_file)?)?
    } else {
        let phrase = phrase_from(phrase_file)?;
        MasterSecret::from_bytes(trove_recovery::phrase_to_master(&phrase)?)
    };
    let pass = passphrase(true)?;
    anyhow::ensure!(
        !pass.is_empty(),
        "an empty passphrase protects nothing; choose one"
    );
    let (_, owner) = Home::init(&dir, master, pass.as_bytes(), KdfParams::default())?;
    if json {
        print_json(
            &json!({"home": dir, "owner_id": Home::owner_id(&owner), "identity": owner.public().to_hex(), "fingerprint": owner.public().fingerprint()}),
        );
    } else {
        println!(
            "Recovered identity {} into {}",
            owner.public().fingerprint(),
            dir.display()
        );
        println!(
            "Next: `trove peer add NAME dir:PATH` with any surviving peer, then `trove sync`."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `trove sync`.
pub fn sync(json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let bar = ui::Bar::new(json);
    let r = trove_repo::sync(&home, &owner, &bar)?;
    if json {
        print_json(&serde_json::to_value(&r)?);
    } else {
        println!(
            "synced {} container(s) ({}): {} snapshots, {} index segments, {} packs ({} round(s) of reading peers)",
            r.containers.len(),
            r.containers.join(", "),
            r.snapshots,
            r.segments,
            r.packs,
            r.rounds
        );
        for p in &r.peers {
            match &p.error {
                Some(e) => println!("  peer `{}`: could not be read: {e}", p.peer),
                None => println!(
                    "  peer `{}`: {} container manifest(s), {} snapshot(s), {} segment(s){}",
                    p.peer,
                    p.manifests,
                    p.snapshots,
                    p.segments,
                    if p.in_trash > 0 {
                        format!(" ({} of them in its trash)", p.in_trash)
                    } else {
                        String::new()
                    }
                ),
            }
        }
        for o in &r.from_trash {
            println!("  restored {o}");
        }
        for (local, roster) in &r.peers_recognised {
            println!("  peer `{local}` is roster peer `{roster}`");
        }
        for p in &r.peers_added {
            println!("  found peer {p}");
        }
        for p in &r.refused {
            println!("  REFUSED {p}");
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// `trove recovery split`.
pub fn split(
    threshold: Option<u8>,
    shares: Option<u8>,
    groups: Option<&str>,
    out: Option<&Path>,
    json: bool,
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
    let mut rows = Vec::new();
    for ((name, spec), set) in layout.iter().zip(&sets) {
        for (i, share) in set.iter().enumerate() {
            rows.push((name.clone(), i + 1, *spec, share.to_mnemonic()));
        }
    }
    if let Some(dir) = out {
        // A full threshold of shares is the master secret: private folder
        // and files, whatever the umask.
        trove_peer::durable::create_dir_all(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        for (name, i, spec, words) in &rows {
            let safe: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let path = dir.join(format!("{safe}-{i}.txt"));
            let text = format!(
                "Trove recovery share — keep it private.\nidentity {fp}\ngroup `{name}`: share {i} of {} (any {} of this group are needed; {group_threshold} of the {} groups are needed)\n\n{words}\n",
                spec.member_count,
                spec.member_threshold,
                layout.len()
            );
            trove_peer::durable::create_new(&path, text.as_bytes(), None)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if json {
        print_json(&json!({
            "fingerprint": fp,
            "group_threshold": group_threshold,
            "shares": rows.iter().map(|(g, i, s, w)| json!({"group": g, "member": i, "member_threshold": s.member_threshold, "member_count": s.member_count, "mnemonic": if out.is_some() { serde_json::Value::Null } else { json!(w) }})).collect::<Vec<_>>(),
            "out": out,
        }));
    } else if let Some(dir) = out {
        println!(
            "wrote {} share files to {} (one per holder)",
            rows.len(),
            dir.display()
        );
    } else {
        println!("SLIP-39 shares of identity {fp}; {group_threshold} group(s) needed:");
        for (g, i, s, w) in &rows {
            println!(
                "\n[{g}] share {i} of {} (any {} of this group)\n{w}",
                s.member_count, s.member_threshold
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `trove recovery combine`: shares in, phrase out.
pub fn combine_cmd(file: Option<&Path>, json: bool) -> Result<ExitCode> {
    let master = combine(&read_shares(file)?)?;
    let phrase = trove_recovery::master_to_phrase(master.as_bytes());
    if json {
        print_json(
            &json!({"phrase": phrase, "fingerprint": master.identity().public().fingerprint()}),
        );
    } else {
        println!(
            "identity {}\n{phrase}",
            master.identity().public().fingerprint()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `trove recovery verify`: a drill that never prints the secret.
pub fn verify(file: Option<&Path>, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let mine = home.public_identity()?;
    let shares = read_shares(file)?;
    let master = combine(&shares)?;
    let theirs = master.identity().public();
    let ok = theirs == mine;
    if json {
        print_json(
            &json!({"ok": ok, "shares": shares.len(), "identity": mine.fingerprint(), "reconstructs": theirs.fingerprint()}),
        );
    } else if ok {
        println!(
            "OK: these {} shares reconstruct this identity ({})",
            shares.len(),
            mine.fingerprint()
        );
    } else {
        println!(
            "MISMATCH: these shares reconstruct identity {}, not this one ({}): shares of another secret, or a wrong SLIP-39 passphrase (TROVE_SLIP39_PASSPHRASE)",
            theirs.fingerprint(),
            mine.fingerprint()
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `trove recovery phrase`.
pub fn phrase(json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let owner = unlock(&home)?;
    let phrase = trove_recovery::master_to_phrase(owner.master.as_bytes());
    if json {
        print_json(&json!({"phrase": phrase}));
    } else {
        println!("{phrase}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `trove recovery kit`: what to print and keep with the phrase; no secrets.
pub fn kit(out: &PathBuf, json: bool) -> Result<ExitCode> {
    let home = open_home()?;
    let (id, owner_id) = Home::peek_ids(home.dir())?;
    let peers = home.index.peers()?;
    let containers = home.index.containers()?;
    let mut t = String::new();
    t.push_str("TROVE RECOVERY KIT — keep with your 24-word phrase (or your share holders' names).\nThis sheet holds no secret.\n\n");
    t.push_str(&format!(
        "Identity fingerprint: {}\nIdentity key (signs your manifests): {}\nOwner id (what node operators grant; `trove whoami`): {}\n\n",
        id.fingerprint(),
        id.to_hex(),
        owner_id.as_deref().unwrap_or("unknown until a command unlocks this home once")
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
    trove_peer::durable::replace(out, t.as_bytes(), None)
        .with_context(|| format!("writing {}", out.display()))?;
    if json {
        print_json(
            &json!({"out": out, "fingerprint": id.fingerprint(), "peers": peers.len(), "containers": containers.len()}),
        );
    } else {
        println!(
            "wrote the recovery kit to {} — print it and keep it with the phrase",
            out.display()
        );
    }
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
