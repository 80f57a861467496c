//! Saying on stderr, while a run or an audit goes on, that the kernel's event ring buffer was
//! full: the programs count each event they could not queue (`DROPPED`); the watcher polls the
//! count and writes a line when it grew, at most one line per interval (a flood costs a few
//! lines, not one per event). The summary gives the total.

use std::time::{Duration, Instant};

/// The lines about lost events, from the running total.
pub struct LostLines {
    every: Duration,
    reported: u64,
    last_line: Instant,
}

impl LostLines {
    /// At most one line per `every` (the first as soon as an event is lost).
    pub fn new(every: Duration) -> Self {
        LostLines { every, reported: 0, last_line: Instant::now() - every }
    }

    /// The line to write now that `lost` events were lost in all, if any.
    pub fn next(&mut self, lost: u64, now: Instant) -> Option<String> {
        if lost <= self.reported || now.duration_since(self.last_line) < self.every {
            return None;
        }
        let line = format!(
            "sockstrace: {} event(s) lost ({lost} in all): the kernel's ring buffer was full",
            lost - self.reported
        );
        self.reported = lost;
        self.last_line = now;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_when_the_count_grew_at_most_once_per_interval() {
        let every = Duration::from_secs(10);
        let mut lines = LostLines::new(every);
        let t0 = Instant::now();
        assert_eq!(lines.next(0, t0), None);
        assert_eq!(
            lines.next(3, t0).as_deref(),
            Some("sockstrace: 3 event(s) lost (3 in all): the kernel's ring buffer was full")
        );
        assert_eq!(lines.next(9, t0 + Duration::from_secs(1)), None, "within the interval");
        assert_eq!(
            lines
                .next(9, t0 + every)
                .as_deref()
                .map(|l| l.starts_with("sockstrace: 6 event(s) lost (9 in all)")),
            Some(true)
        );
        assert_eq!(lines.next(9, t0 + 3 * every), None, "nothing new");
    }
}
