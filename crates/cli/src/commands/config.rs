//! `trove config show`: the settings in effect for `TROVE_HOME`
//! (`config.toml` with every default filled in).
//!
//! It reads the file only: no passphrase, no index, so it works while
//! `trove daemon` or a backup holds the home.

use crate::context::{home_dir, Out};
use anyhow::{Context, Result};
use clap::Subcommand;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use trove_repo::{format_duration, Config, ContainerSchedule};

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Print the settings in effect: config.toml with every default filled in
    /// (TOML, or JSON with --json).
    Show,
}

/// What `config show --json` prints.
#[derive(Serialize)]
struct Shown {
    /// Where the file is, or would be.
    path: PathBuf,
    /// Whether it exists (else `config` is all defaults).
    exists: bool,
    /// The settings in effect.
    config: Config,
    /// What a container the file does not name gets.
    container_defaults: ContainerSchedule,
}

pub fn run(cmd: ConfigCmd, out: Out) -> Result<ExitCode> {
    match cmd {
        ConfigCmd::Show => show(out),
    }
}

fn show(out: Out) -> Result<ExitCode> {
    let home = home_dir()?;
    let path = Config::path(&home);
    let config = Config::load(&home)?;
    let exists = path
        .try_exists()
        .with_context(|| format!("cannot tell whether {} exists", path.display()))?;
    let row = Shown {
        path,
        exists,
        container_defaults: ContainerSchedule::default(),
        config,
    };
    if out.json {
        out.emit(&row, |_| ())?;
        return Ok(ExitCode::SUCCESS);
    }
    let body = toml_text(&row.config)?;
    if row.exists {
        println!(
            "# {}, with the defaults for what it leaves out",
            row.path.display()
        );
    } else {
        println!(
            "# no {}: these are the defaults (`trove container set` writes the file)",
            row.path.display()
        );
    }
    let d = &row.container_defaults;
    println!(
        "# a container not listed here: watch = {}, prune_every = \"{}\", {}",
        d.watch,
        format_duration(d.prune_every),
        d.retention.describe()
    );
    for (name, c) in &row.config.containers {
        println!("# `{name}` keeps: {}", c.retention.describe());
    }
    print!("{body}");
    Ok(ExitCode::SUCCESS)
}

/// The TOML `config.toml` would hold for `config` (as [`Config::save`]
/// writes it, without its header comment).
fn toml_text(config: &Config) -> Result<String> {
    toml::to_string_pretty(config).context("cannot print the settings as TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shown_text_reads_back_as_the_same_settings() {
        let mut config = Config::default();
        config.containers.insert("docs".into(), Default::default());
        let text = toml_text(&config).unwrap();
        assert!(text.contains("[daemon]"), "{text}");
        assert!(text.contains("peer_lost_after = \"72h\""), "{text}");
        assert!(text.contains("[containers.docs]"), "{text}");
        assert_eq!(Config::parse(&text).unwrap(), config);
    }
}
