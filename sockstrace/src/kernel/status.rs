//! Whether the kernel layer can be on, and if not, why.

use std::{fmt, path::PathBuf};

/// The outcome of [`super::probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// The kernel layer can be on: we are root, cgroup2 is mounted at `cgroup2`, the kernel has
    /// BTF, and the verifier accepted every program of the embedded object.
    Available {
        /// Where the cgroup v2 hierarchy is mounted.
        cgroup2: PathBuf,
    },
    /// The kernel layer cannot be on; only the seccomp supervisor works.
    Unavailable(Unavailable),
}

/// Why the kernel layer cannot be on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// Loading eBPF programs and attaching to cgroups needs root.
    NotRoot,
    /// This binary was built with `AYA_BUILD_SKIP=1`: it holds no eBPF object.
    NotBuilt,
    /// No cgroup2 file system is mounted (`/proc/self/mountinfo` lists none).
    NoCgroup2,
    /// The kernel exposes no BTF (`/sys/kernel/btf/vmlinux`).
    NoBtf,
    /// The object or one of its programs failed to load; the error chain, verifier log included.
    LoadFailed(String),
}

impl LayerStatus {
    /// Whether the kernel layer can be on.
    pub fn is_available(&self) -> bool {
        matches!(self, Self::Available { .. })
    }

    /// Why it cannot, if it cannot.
    pub fn reason(&self) -> Option<&Unavailable> {
        match self {
            Self::Available { .. } => None,
            Self::Unavailable(reason) => Some(reason),
        }
    }
}

impl fmt::Display for LayerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Available { cgroup2 } => {
                write!(f, "available (cgroup2 at {})", cgroup2.display())
            }
            Self::Unavailable(reason) => write!(f, "unavailable: {reason}"),
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRoot => f.write_str("not root"),
            Self::NotBuilt => f.write_str("built without the eBPF object (AYA_BUILD_SKIP)"),
            Self::NoCgroup2 => f.write_str("no cgroup2 mount"),
            Self::NoBtf => f.write_str("kernel BTF missing (/sys/kernel/btf/vmlinux)"),
            Self::LoadFailed(error) => write!(f, "load failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_why() {
        let off = LayerStatus::Unavailable(Unavailable::LoadFailed("EPERM".into()));
        assert!(!off.is_available());
        assert_eq!(off.to_string(), "unavailable: load failed: EPERM");
        assert_eq!(LayerStatus::Unavailable(Unavailable::NotRoot).to_string(), "unavailable: not root");
        let on = LayerStatus::Available { cgroup2: PathBuf::from("/sys/fs/cgroup/unified") };
        assert!(on.is_available());
        assert_eq!(on.reason(), None);
        assert_eq!(on.to_string(), "available (cgroup2 at /sys/fs/cgroup/unified)");
    }
}
