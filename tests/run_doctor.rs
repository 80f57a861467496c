//! `sockstrace doctor`: one line per layer, "ok" or "off" first, and exit 0
//! where the supervisor works (here). As root with the eBPF object built in,
//! the kernel layer line says ok; as nobody it says off, with the reason.

use sockstrace_tests::unpriv::Copies;
use sockstrace_tests::{is_root, skip, Outcome, Trace};

/// The checks doctor must report, by a word of each line.
const LAYERS: &[&str] = &[
    "seccomp user notification",
    "pidfd_getfd",
    "WAIT_KILLABLE_RECV",
    "SYNC_WAKE_UP",
    "kernel layer",
    "non-dumpable",
    "Landlock",
    "run --user",
    "user+network namespaces",
    "allowlist",
    "gcore",
];

fn assert_lines(out: &Outcome) -> Vec<String> {
    let lines: Vec<String> =
        out.stdout.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    assert_eq!(lines.len(), LAYERS.len(), "one line per layer expected\n{}", out.describe());
    for (line, layer) in lines.iter().zip(LAYERS) {
        assert!(line.contains(layer), "line {line:?} should be about {layer}\n{}", out.describe());
        assert!(
            line.starts_with("ok ") || line.starts_with("off "),
            "line {line:?} has no ok/off\n{}",
            out.describe()
        );
    }
    lines
}

#[test]
fn doctor_prints_one_line_per_layer_and_exits_0() {
    let out = Trace::raw(["doctor"]).run();
    out.assert_code(0);
    let lines = assert_lines(&out);
    // The supervisor works on this machine (every other test relies on it).
    assert!(lines[0].starts_with("ok "), "{}", out.describe());
    assert!(lines[1].starts_with("ok "), "{}", out.describe());
    if is_root() {
        let kernel = &lines[4];
        // Agrees with what a run says about the kernel layer.
        let run = Trace::new().program(["true"]).run();
        let on = run.kernel_layer().starts_with("on");
        assert_eq!(
            kernel.starts_with("ok "),
            on,
            "doctor says {kernel:?} but a run says kernel {:?}\n{}",
            run.kernel_layer(),
            out.describe()
        );
    }
}

#[test]
fn doctor_as_nobody_says_the_kernel_layer_is_off() {
    if !is_root() {
        skip!("needs root to switch to nobody with setpriv");
    }
    let copies = Copies::new();
    let out = Trace::raw(["doctor"])
        .bin(&copies.sockstrace)
        .wrapper(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        .run();
    out.assert_code(0);
    let lines = assert_lines(&out);
    assert!(lines[0].starts_with("ok "), "{}", out.describe());
    assert!(lines[4].starts_with("off "), "{}", out.describe());
    assert!(
        lines[4].to_lowercase().contains("root"),
        "the reason should name root: {}\n{}",
        lines[4],
        out.describe()
    );
}

#[test]
fn doctor_json_says_the_same_as_the_lines() {
    let text = Trace::raw(["doctor"]).run();
    text.assert_code(0);
    let lines = assert_lines(&text);
    let out = Trace::raw(["doctor", "--json"]).run();
    out.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("doctor --json is not one JSON object: {e}\n{}", out.describe()));
    assert_eq!(doc["ok"], true, "{doc}");
    let checks = doc["checks"].as_array().unwrap_or_else(|| panic!("no checks array: {doc}"));
    assert_eq!(checks.len(), LAYERS.len(), "{doc}");
    for ((check, line), layer) in checks.iter().zip(&lines).zip(LAYERS) {
        let name = check["name"].as_str().unwrap_or_default();
        assert!(name.contains(layer), "{check} should be about {layer}");
        assert_eq!(check["ok"].as_bool(), Some(line.starts_with("ok ")), "{check} vs {line:?}");
        assert!(check["detail"].is_string(), "{check}");
    }
}
