//! The demo's Trove nodes: `trove node run` child processes on loopback.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// A `trove node run` child process on loopback, killed on drop.
pub struct DemoNode {
    pub data: PathBuf,
    pub ticket: String,
    child: Option<std::process::Child>,
}

impl DemoNode {
    pub fn start(data: &Path) -> Result<Self> {
        std::fs::create_dir_all(data.parent().context("node folder has a parent")?)?;
        let log = std::fs::File::create(data.with_extension("log"))?;
        let child = std::process::Command::new(std::env::current_exe()?)
            .args([
                "node",
                "run",
                "--network",
                "direct",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(data)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a demo node")?;
        let mut node = DemoNode {
            data: data.to_owned(),
            ticket: String::new(),
            child: Some(child),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(t) = trove_node::NodeDir::open(data).and_then(|d| d.ticket()) {
                node.ticket = t;
                return Ok(node);
            }
            if let Some(c) = node.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    bail!(
                        "the demo node exited ({st}); see {}",
                        data.with_extension("log").display()
                    );
                }
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the demo node did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for DemoNode {
    fn drop(&mut self) {
        self.kill();
    }
}
