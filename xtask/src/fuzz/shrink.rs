//! Delta debugging over an op list: the fewest ops that still leak. Pure: the caller's
//! `still_fails` runs a candidate (a few times, races being flaky) and says whether the same
//! finding came back.

/// Shrinks `items` while `still_fails` holds, within `budget` calls of it: first chunks of
/// halving size, then single items (ddmin's complement steps).
pub fn shrink<T: Clone>(items: &[T], budget: usize, mut still_fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    let mut current = items.to_vec();
    let mut calls = 0usize;
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.len() {
            if calls >= budget {
                return current;
            }
            let end = (start + chunk).min(current.len());
            let candidate: Vec<T> = current[..start].iter().chain(&current[end..]).cloned().collect();
            calls += 1;
            if !candidate.is_empty() && still_fails(&candidate) {
                current = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed_any {
            return current;
        }
        if !removed_any || chunk > 1 {
            chunk = (chunk / 2).max(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_two_ops_that_matter() {
        let items: Vec<u32> = (0..40).collect();
        let out = shrink(&items, 1000, |c| c.contains(&7) && c.contains(&31));
        assert_eq!(out, vec![7, 31]);
    }

    #[test]
    fn respects_the_budget_and_keeps_a_failing_list() {
        let items: Vec<u32> = (0..40).collect();
        let mut calls = 0;
        let out = shrink(&items, 5, |c| {
            calls += 1;
            c.contains(&3)
        });
        assert!(calls <= 5);
        assert!(out.contains(&3));
    }

    #[test]
    fn flaky_failures_only_keep_what_failed() {
        let items: Vec<u32> = (0..10).collect();
        let mut n = 0;
        let out = shrink(&items, 100, |c| {
            n += 1;
            n % 2 == 0 && c.contains(&5)
        });
        assert!(out.contains(&5));
    }

    /// The planted bug's shape: a UDP socket and a send to port 9 from it, buried in a
    /// generated sequence, shrink to exactly those two ops.
    #[test]
    fn a_planted_leak_shrinks_to_its_two_ops() {
        use super::super::grammar::{Config, Gen, OptionTable, Rng};
        let table = OptionTable::from_headers();
        let cfg = Config { veth_ifindex: 2, veth_name: "fzva".into(), ..Default::default() };
        let planted = |ops: &[String]| {
            // fd[s] is a UDP socket (no later socket on that slot) and a sendto from it to port 9.
            ops.iter().enumerate().any(|(i, l)| {
                let w: Vec<&str> = l.split(' ').collect();
                w[0] == "sendto"
                    && w[3].starts_with("02000009")
                    && ops[..i]
                        .iter()
                        .rev()
                        .find(|p| p.starts_with(&format!("socket {} ", w[1])))
                        .is_some_and(|p| p.starts_with(&format!("socket {} 2 2 ", w[1])))
            })
        };
        let mut found = 0;
        for seq in 0..200 {
            let ops: Vec<String> = Gen::new(Rng::sequence_seed(9, seq), seq, &cfg, &table)
                .sequence(10)
                .into_iter()
                .map(|o| o.line)
                .collect();
            if !planted(&ops) {
                continue;
            }
            found += 1;
            let out = shrink(&ops, 400, |c| planted(c));
            assert_eq!(out.len(), 2, "{out:?} from {} ops", ops.len());
            assert!(out[0].starts_with("socket ") && out[1].starts_with("sendto "), "{out:?}");
        }
        assert!(found >= 5, "only {found} sequences carry the planted shape");
    }
}
