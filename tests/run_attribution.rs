//! Who made each call: the events' `pid`, `tid`, `exe` and `argv` describe the process image
//! that made it, also for a thread whose earlier calls were already reported (the supervisor
//! keeps who a thread is between its calls, and must see an `execve` in between).

use sockstrace_tests::{client, Trace, UdpSink};

/// The `argv[1]` (the stage) of each allowed `sendto` event, in report order, with its pid and tid.
fn stages(mode: &str) -> (Vec<(String, i64, i64)>, String) {
    let sink = UdpSink::bind("127.0.0.1");
    let prog = client("exec_attribution");
    let out = Trace::new()
        .allow(&sink.dst())
        .program([prog.to_str().unwrap(), mode, &sink.host(), &sink.port()])
        .run();
    out.assert_code(0);
    let seen = out
        .events_where(|e| e.s("syscall") == "sendto" && e.is_allowed())
        .into_iter()
        .map(|e| {
            let stage = e.get("argv").and_then(|a| a.get(1)).and_then(|s| s.as_str()).unwrap_or("?");
            (stage.to_owned(), e.i("pid").unwrap_or(-1), e.i("tid").unwrap_or(-1))
        })
        .collect();
    (seen, out.describe())
}

/// The main thread sends, execs itself with other arguments, and sends again: the second
/// event names the new image, in the same process.
#[test]
fn an_exec_between_two_calls_of_one_thread_is_seen() {
    let (seen, describe) = stages("leader");
    let names: Vec<&str> = seen.iter().map(|(s, ..)| s.as_str()).collect();
    assert_eq!(names, ["leader", "after"], "{describe}");
    assert_eq!(seen[0].1, seen[1].1, "exec keeps the pid\n{describe}");
    assert_eq!(seen[1].1, seen[1].2, "{describe}");
}

/// A second thread execs: it takes the process id as its thread id, the one the main thread
/// was reported under before.
#[test]
fn an_exec_from_another_thread_is_seen_under_the_main_threads_id() {
    let (seen, describe) = stages("thread");
    let names: Vec<&str> = seen.iter().map(|(s, ..)| s.as_str()).collect();
    // Both threads run the image started as `exec_attribution thread ...`.
    assert_eq!(names, ["thread", "thread", "after"], "{describe}");
    let (pid, main_tid, after_tid) = (seen[0].1, seen[0].2, seen[2].2);
    assert_eq!(main_tid, pid, "{describe}");
    assert_eq!(after_tid, pid, "the exec'ing thread takes the process id\n{describe}");
}
