//! Finding dependency cycles, shared by jobs (`needs` and stage order) and
//! environments (`after`).

/// Returns cycles as node lists `[a, b, c]` meaning a → b → c → a, where an
/// edge `i → j` is `edges[i]` containing `j`. Each cycle starts at its
/// smallest index and cycles come out ordered by it, so reports are stable.
///
/// Not Tarjan: peel off every node whose dependencies all resolve (Kahn),
/// then walk from a remaining node along remaining edges until a node
/// repeats; that loop is a cycle. Remove it and repeat. Quadratic in the
/// worst case, but configs are small and the walk reports one readable
/// cycle per tangle rather than one giant component.
pub(crate) fn cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const MAX_REPORTED: usize = 20;
    let n = edges.len();
    let mut alive = vec![true; n];
    let mut found = Vec::new();
    let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (from, targets) in edges.iter().enumerate() {
        for &to in targets {
            if let Some(list) = reverse.get_mut(to) {
                list.push(from);
            }
        }
    }
    while found.len() < MAX_REPORTED {
        let remaining = unresolved(edges, &reverse, &alive);
        let Some(start) = (0..n).find(|&i| remaining[i]) else {
            break;
        };
        let mut path: Vec<usize> = Vec::new();
        let mut seen_at = vec![usize::MAX; n];
        let mut current = start;
        let cycle = loop {
            if seen_at[current] != usize::MAX {
                break path[seen_at[current]..].to_vec();
            }
            seen_at[current] = path.len();
            path.push(current);
            match edges[current]
                .iter()
                .copied()
                .find(|&j| j < n && remaining[j])
            {
                Some(next) => current = next,
                None => break Vec::new(),
            }
        };
        if cycle.is_empty() {
            break;
        }
        for &i in &cycle {
            alive[i] = false;
        }
        let min_at = cycle
            .iter()
            .enumerate()
            .min_by_key(|(_, node)| **node)
            .map_or(0, |(at, _)| at);
        let mut rotated = cycle[min_at..].to_vec();
        rotated.extend_from_slice(&cycle[..min_at]);
        found.push(rotated);
    }
    found.sort();
    found
}

/// Nodes that are alive and cannot be ordered: they are on a cycle or wait
/// on one.
fn unresolved(edges: &[Vec<usize>], reverse: &[Vec<usize>], alive: &[bool]) -> Vec<bool> {
    let n = edges.len();
    let mut waiting: Vec<usize> = edges
        .iter()
        .map(|targets| targets.iter().filter(|&&j| j < n && alive[j]).count())
        .collect();
    let mut remaining: Vec<bool> = alive.to_vec();
    let mut ready: Vec<usize> = (0..n).filter(|&i| alive[i] && waiting[i] == 0).collect();
    while let Some(done) = ready.pop() {
        remaining[done] = false;
        for &dependent in &reverse[done] {
            if alive[dependent] && remaining[dependent] {
                waiting[dependent] = waiting[dependent].saturating_sub(1);
                if waiting[dependent] == 0 {
                    ready.push(dependent);
                }
            }
        }
    }
    remaining
}

#[cfg(test)]
mod tests {
    use super::cycles;

    #[test]
    fn acyclic_has_none() {
        assert!(cycles(&[vec![], vec![0], vec![0, 1]]).is_empty());
    }

    #[test]
    fn finds_self_loops_and_rotates_to_smallest() {
        assert_eq!(cycles(&[vec![0]]), vec![vec![0]]);
        assert_eq!(
            cycles(&[vec![], vec![3], vec![], vec![1]]),
            vec![vec![1, 3]]
        );
        assert_eq!(
            cycles(&[vec![1], vec![2], vec![0], vec![2]]),
            vec![vec![0, 1, 2]]
        );
    }

    #[test]
    fn separate_cycles_each_reported_once() {
        let found = cycles(&[vec![1], vec![0], vec![3], vec![2], vec![0, 2]]);
        assert_eq!(found, vec![vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn duplicate_edges_are_harmless() {
        assert_eq!(cycles(&[vec![1, 1], vec![0, 0]]), vec![vec![0, 1]]);
    }
}
