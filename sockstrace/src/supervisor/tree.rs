//! The traced process tree: every descendant of the supervisor (which is a
//! child subreaper, so orphans stay in the tree), and killing it.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::sys;

pub struct Tree {
    root: i32,
    killing: AtomicBool,
}

impl Tree {
    pub fn new(root: i32) -> Self {
        Tree { root, killing: AtomicBool::new(false) }
    }

    /// Once a kill has started, every further call is denied.
    pub fn is_killing(&self) -> bool {
        self.killing.load(Ordering::Acquire)
    }

    /// SIGKILLs the leaking thread's process first, then every descendant,
    /// again and again until none is left (a racing fork cannot escape).
    pub fn kill_all(&self, first: Option<BorrowedFd<'_>>) {
        self.killing.store(true, Ordering::Release);
        if let Some(pidfd) = first {
            let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
        }
        for _ in 0..200 {
            let victims = descendants(self.root);
            if victims.is_empty() {
                return;
            }
            for pid in victims {
                // A stale pid is only ESRCH.
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Live (non-zombie) descendants of `root`, from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<(i32, char)>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if let Some((state, ppid)) = parse_stat(&stat) {
            children.entry(ppid).or_default().push((pid, state));
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(parent) = stack.pop() {
        for &(pid, state) in children.get(&parent).map(Vec::as_slice).unwrap_or(&[]) {
            stack.push(pid);
            if state != 'Z' && state != 'X' {
                out.push(pid);
            }
        }
    }
    out
}

/// State and parent pid from `/proc/PID/stat` (the name may hold spaces and parentheses).
pub fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        assert_eq!(parse_stat("42 (curl) S 7 42 42 0"), Some(('S', 7)));
        assert_eq!(parse_stat("42 (a) b (c)) Z 9 1"), Some(('Z', 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn finds_our_own_children() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let found = descendants(std::process::id() as i32);
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&(child.id() as i32)), "{found:?}");
    }
}
