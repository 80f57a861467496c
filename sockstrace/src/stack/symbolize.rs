//! Naming a stack's addresses: DWARF (function, file, line, inlined calls)
//! where the module or its debug file has it, the ELF symbol table otherwise,
//! and the module and offset as the last resort.

use super::capture::Captured;
use super::module::Cache;

pub use sockstrace::schema::Frame;

/// The frames of `pcs` (innermost first; a function inlined into another is
/// a frame of its own, before its caller).
pub fn symbolize(c: &Captured, pcs: &[u64], cache: &Cache) -> Vec<Frame> {
    let mut frames = Vec::new();
    for (i, &pc) in pcs.iter().enumerate() {
        let mut frame = Frame {
            pc: format!("{pc:#x}"),
            module: None,
            offset: None,
            function: None,
            file: None,
            line: None,
        };
        let Some(m) = c.mapping(pc) else {
            frames.push(frame);
            continue;
        };
        frame.module = (!m.path.is_empty()).then(|| m.path.clone());
        let module = cache.get(c.pid, m);
        let svma = module.as_ref().and_then(|module| module.svma(m, pc));
        frame.offset = Some(format!("{:#x}", svma.unwrap_or(pc - m.start + m.offset)));
        let (Some(module), Some(svma)) = (module, svma) else {
            frames.push(frame);
            continue;
        };
        // A return address points after the call: look up the call itself.
        let probe = if i == 0 { svma } else { svma.saturating_sub(1) };
        let lines = module.lines(probe);
        let symbol = module.symbol(probe).map(demangle);
        if lines.is_empty() {
            frame.function = symbol;
            frames.push(frame);
            continue;
        }
        let last = lines.len() - 1;
        for (j, (function, file, line)) in lines.into_iter().enumerate() {
            let mut f = frame.clone();
            // The outermost (not inlined) function: the symbol when DWARF has no name.
            f.function = if j == last { function.or_else(|| symbol.clone()) } else { function };
            f.file = file;
            f.line = line;
            frames.push(f);
        }
    }
    frames
}

fn demangle(name: &str) -> String {
    let d = rustc_demangle::try_demangle(name);
    match d {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

/// Functions of libc (and the vDSO) that only make the system call: skipped
/// when telling where in the program's own code a leak came from.
fn is_wrapper(frame: &Frame) -> bool {
    let module = frame.module.as_deref().unwrap_or("");
    let base = module.rsplit('/').next().unwrap_or(module);
    let libc_module = ["libc.so", "libc-", "libpthread", "ld-linux", "ld-musl", "libc.musl"]
        .iter()
        .any(|p| base.starts_with(p))
        || module.starts_with('[')
        || module.is_empty();
    let function = frame.function.as_deref().unwrap_or("");
    let wrapper_name = function.starts_with("__libc_")
        || function.starts_with("__GI_")
        || function.starts_with("__kernel_vsyscall")
        || function.starts_with("__internal_syscall")
        || function.starts_with("__socketcall")
        || matches!(
            function.trim_start_matches('_'),
            "connect"
                | "sendto"
                | "send"
                | "sendmsg"
                | "sendmmsg"
                | "bind"
                | "listen"
                | "accept"
                | "accept4"
                | "socket"
                | "setsockopt"
                | "syscall"
                | "io_uring_setup"
        );
    libc_module || wrapper_name
}

/// The program's own frames, innermost first: the stack without the system
/// call wrappers at its top.
pub fn own_frames(frames: &[Frame]) -> &[Frame] {
    let skip = frames.iter().take_while(|f| is_wrapper(f)).count();
    if skip == frames.len() {
        frames
    } else {
        &frames[skip..]
    }
}

/// A frame as people read it: `function (file:line)`, `function in module`,
/// or `module+offset`.
pub fn describe(f: &Frame) -> String {
    let module = f.module.as_deref().map(|m| m.rsplit('/').next().unwrap_or(m)).unwrap_or("?");
    match (&f.function, &f.file, f.line) {
        (Some(func), Some(file), Some(line)) => {
            format!("{func} ({}:{line})", file.rsplit('/').next().unwrap_or(file))
        }
        (Some(func), _, _) => format!("{func} in {module}"),
        (None, _, _) => format!("{module}+{}", f.offset.as_deref().unwrap_or(&f.pc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(module: &str, function: Option<&str>) -> Frame {
        Frame {
            pc: "0x1".into(),
            module: Some(module.into()),
            offset: Some("0x10".into()),
            function: function.map(str::to_owned),
            file: None,
            line: None,
        }
    }

    #[test]
    fn own_frames_skip_the_syscall_wrappers() {
        let frames = vec![
            frame("/usr/lib/x86_64-linux-gnu/libc.so.6", Some("connect")),
            frame("/opt/app/prog", Some("leak_inner")),
            frame("/opt/app/prog", Some("main")),
        ];
        assert_eq!(own_frames(&frames)[0].function.as_deref(), Some("leak_inner"));
        // A static program: the wrapper is in the program itself.
        let frames =
            vec![frame("/opt/app/prog", Some("__libc_connect")), frame("/opt/app/prog", Some("leak_inner"))];
        assert_eq!(own_frames(&frames)[0].function.as_deref(), Some("leak_inner"));
        // Nothing but libc: the whole stack.
        let frames = vec![frame("/lib/libc.so.6", Some("connect"))];
        assert_eq!(own_frames(&frames).len(), 1);
    }

    #[test]
    fn frames_read_as_people_expect() {
        let mut f = frame("/opt/app/prog", Some("leak_inner"));
        assert_eq!(describe(&f), "leak_inner in prog");
        f.file = Some("/src/stack_leak.c".into());
        f.line = Some(12);
        assert_eq!(describe(&f), "leak_inner (stack_leak.c:12)");
        assert_eq!(describe(&frame("/lib/libfoo.so", None)), "libfoo.so+0x10");
    }
}
