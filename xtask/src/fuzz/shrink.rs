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
}
