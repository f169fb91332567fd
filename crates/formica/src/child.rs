//! `formica serve` as a child process, for the workloads that must treat the server as its
//! operator does: kill it with SIGKILL and start it again on the same books (the crash loop),
//! or watch its memory from outside (the soak). The child is this very binary
//! (`std::env::current_exe()`), so a test or a CI run exercises the server it built.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use formica_store::Location;

/// How long a server may take to listen: opening and loading the books of a long crash loop
/// in a debug build on a busy 2-core machine takes seconds, not a minute.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(120);

/// The end of the child's standard error kept for reports (a trace-level log is large).
const STDERR_KEPT_BYTES: usize = 64 * 1024;

/// The signal `Child::kill` sends.
const SIGKILL: i32 = 9;

/// A running `formica serve`; killed and reaped when dropped.
#[derive(Debug)]
pub struct ServeChild {
    child: Child,
    /// The lines it prints on standard output, read on a thread until it closes.
    lines: mpsc::Receiver<String>,
    /// The end of its standard error.
    stderr: Arc<Mutex<String>>,
}

/// The options that point a `formica` command at the books at `location`.
pub fn store_options(location: &Location) -> [OsString; 2] {
    match location {
        Location::Sqlite(dir) => ["--data-dir".into(), dir.into()],
        Location::Postgres(url) => ["--database-url".into(), url.into()],
    }
}

/// This binary, with the environment's store and configuration settings removed, so that only
/// the arguments given choose the books.
pub fn formica() -> anyhow::Result<Command> {
    let mut command = Command::new(std::env::current_exe().context("finding this binary")?);
    command
        .env_remove("FORMICA_DATA_DIR")
        .env_remove("FORMICA_DATABASE_URL")
        .env_remove("FORMICA_CONFIG")
        .env_remove("FORMICA_LISTEN");
    Ok(command)
}

impl ServeChild {
    /// Starts `formica serve` on a free port of 127.0.0.1 over the books at `location`, with
    /// `options` (product rules), without waiting for it to listen.
    pub fn spawn(location: &Location, options: &[&str]) -> anyhow::Result<ServeChild> {
        let mut child = formica()?
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(store_options(location))
            .args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting formica serve")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut stderr = child.stderr.take().context("stderr is piped")?;
        let (sender, lines) = mpsc::channel();
        // Both pipes are drained on threads until they close, so that the child never blocks
        // on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        let kept = Arc::new(Mutex::new(String::new()));
        let tail = Arc::clone(&kept);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(read @ 1..) = stderr.read(&mut buffer) {
                let mut text = tail.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&String::from_utf8_lossy(&buffer[..read]));
                if text.len() > 2 * STDERR_KEPT_BYTES {
                    let mut cut = text.len() - STDERR_KEPT_BYTES;
                    while !text.is_char_boundary(cut) {
                        cut += 1;
                    }
                    text.drain(..cut);
                }
            }
        });
        Ok(ServeChild {
            child,
            lines,
            stderr: kept,
        })
    }

    /// Starts `formica serve` and waits until it listens; its base URL.
    pub fn start(location: &Location, options: &[&str]) -> anyhow::Result<(ServeChild, String)> {
        let mut child = ServeChild::spawn(location, options)?;
        let url = child.listening()?;
        Ok((child, url))
    }

    /// Waits for the `listening on URL` line and answers the URL.
    pub fn listening(&mut self) -> anyhow::Result<String> {
        loop {
            match self.lines.recv_timeout(LISTEN_TIMEOUT) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        return Ok(url.to_owned());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "formica serve did not listen within {LISTEN_TIMEOUT:?}; its stderr:\n{}",
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait()?;
                    bail!(
                        "formica serve stopped before it listened ({status}); its stderr:\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of what it wrote to standard error.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Kills it with SIGKILL and reaps it. An error if it had already exited by itself: a
    /// server is only ever meant to stop when told.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        // Fails only if it was reaped already, which `wait` reports.
        let _ = self.child.kill();
        let status = self.child.wait()?;
        if status.signal() != Some(SIGKILL) {
            bail!(
                "formica serve exited by itself before it was killed ({status}); its stderr:\n{}",
                self.stderr()
            );
        }
        Ok(())
    }

    /// Asks it to stop with SIGTERM (it finishes its work and writes a checkpoint) and waits.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill")?;
        if !signalled.success() {
            bail!("formica serve could not be signalled (it exited by itself?)");
        }
        Ok(self.child.wait()?)
    }

    /// Its resident memory in KiB (`VmRSS` in `/proc/PID/status`), where Linux says.
    pub fn resident_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        // No error here: this may run while another one is being reported.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
