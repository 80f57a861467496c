//! `--learn-syscalls`: counts every call the supervisor sees, by ABI, and
//! writes them as a profile.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};

#[derive(Default)]
pub struct Learner {
    seen: Mutex<BTreeMap<&'static str, BTreeMap<&'static str, u64>>>,
}

impl Learner {
    pub fn record(&self, abi: &'static str, name: &'static str) {
        if let Ok(mut seen) = self.seen.lock() {
            *seen.entry(abi).or_default().entry(name).or_default() += 1;
        }
    }

    /// What was seen so far: ABI -> name -> count.
    pub fn snapshot(&self) -> BTreeMap<&'static str, BTreeMap<&'static str, u64>> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Writes the profile; returns a line for the summary.
    pub fn write(&self, path: &Path, program: &str) -> Result<String> {
        let seen = self.snapshot();
        let text = super::profile::render_learned(program, &seen);
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the profile to {}", path.display()))?;
        let names: std::collections::BTreeSet<_> = seen.values().flat_map(|m| m.keys()).collect();
        let calls: u64 = seen.values().flat_map(|m| m.values()).sum();
        Ok(format!(
            "{} system call names ({calls} calls) learned; profile written to {}",
            names.len(),
            path.display()
        ))
    }
}
