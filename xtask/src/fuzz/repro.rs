//! Standalone C reproducers: the shrunk program, one commented op per line, followed by the
//! fuzzclient interpreter itself (so the file compiles alone: `gcc -pthread -static F.c`).

use super::grammar::Op;

const CLIENT: &str = include_str!("../../../tests/clients/fuzzclient.c");

/// The reproducer's text.
pub fn c_source(ops: &[Op], header: &[String], run_hint: &str, m32: bool) -> String {
    let mut s = String::from("/* sockstrace leak fuzzer: reproducer.\n");
    for line in header {
        s.push_str(&format!(" * {}\n", line.replace("*/", "* /")));
    }
    let arch = if m32 { "-m32 " } else { "" };
    s.push_str(&format!(" *\n * Build: gcc -O1 -pthread -static {arch}THIS.c -o repro\n"));
    s.push_str(&format!(" * Run:   {run_hint}\n"));
    s.push_str(" * The ops run in order; each prints its result. */\n#define FUZZ_REPRO 1\n");
    s.push_str("static const char *const program[] = {\n");
    for op in ops {
        s.push_str(&format!("    /* {} */\n    \"{}\",\n", op.gloss.replace("*/", "* /"), op.line));
    }
    s.push_str("    0,\n};\n\n");
    s.push_str(CLIENT);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducer_embeds_the_program_and_the_interpreter() {
        let ops = vec![Op {
            line: "socket 0 2 2 0".into(),
            gloss: "fd[0] = socket(AF_INET, SOCK_DGRAM, 0)".into(),
            cov: vec![],
        }];
        let c = c_source(&ops, &["seed 1".into()], "sockstrace run -- ./repro", true);
        assert!(c.contains("\"socket 0 2 2 0\","));
        assert!(c.contains("-static -m32 THIS.c"));
        assert!(c.contains("#define FUZZ_REPRO 1"));
        assert!(c.contains("int main("));
    }
}
