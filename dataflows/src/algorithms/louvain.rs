//! Louvain community detection (Blondel et al., 2008) on an undirected weighted graph, and
//! the modularity of a partition.
//!
//! Modularity (Newman, resolution 1): `Q = Σ_c [L_c/m − (D_c/2m)²]`, where `m` is the total
//! edge weight, `L_c` the weight of the edges inside community `c` and `D_c` the sum of its
//! vertices' degrees (a self-loop counts once in `m` and `L_c`, twice in a degree), as in
//! networkx. Louvain alternates two phases until nothing moves: every vertex in turn joins
//! the neighbouring community that raises `Q` most (repeated until no vertex moves), then each
//! community becomes one vertex of a smaller graph.
//!
//! The engine runs it on the worker that took the request, over the members and out-edges
//! every worker hands in ([`gathered`]): moves are greedy and each depends on the last, so
//! the gathered graph (a few bytes per edge) is the simple, exact choice.

use super::{Community, Grouped};
use crate::state::model::{Id, Lsn};

/// One worker's part handed in for Louvain: its member ids (a member's index is its
/// position) and out-edges as (member index, target owner, target index at the owner).
pub(crate) type Part = (Vec<Id>, Vec<(u32, u32, u32)>);

/// An undirected graph of `n` vertices `0..n` at one level of the algorithm.
struct Level {
    /// Neighbours with the edge weight between (a pair's weights summed, no self-loops).
    adjacent: Vec<Vec<(u32, f64)>>,
    self_loops: Vec<f64>,
}

impl Level {
    fn new(n: usize, edges: impl IntoIterator<Item = (u32, u32, f64)>) -> Self {
        let mut adjacent: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
        let mut self_loops = vec![0.0; n];
        for (u, v, w) in edges {
            if u == v {
                self_loops[u as usize] += w;
            } else {
                adjacent[u as usize].push((v, w));
                adjacent[v as usize].push((u, w));
            }
        }
        for list in &mut adjacent {
            list.sort_unstable_by_key(|&(v, _)| v);
            list.dedup_by(|next, kept| {
                if next.0 == kept.0 {
                    kept.1 += next.1;
                    true
                } else {
                    false
                }
            });
        }
        Level { adjacent, self_loops }
    }

    fn degree(&self, v: usize) -> f64 {
        self.adjacent[v].iter().map(|&(_, w)| w).sum::<f64>() + 2.0 * self.self_loops[v]
    }

    /// Moves vertices between communities while that raises modularity; returns each vertex's
    /// community (dense, `0..count`) and whether anything moved.
    fn move_vertices(&self, two_m: f64) -> (Vec<u32>, bool) {
        let n = self.adjacent.len();
        let degree: Vec<f64> = (0..n).map(|v| self.degree(v)).collect();
        let mut community: Vec<u32> = (0..n as u32).collect();
        let mut total = degree.clone();
        let mut weight_to = vec![0.0; n];
        let mut touched: Vec<u32> = Vec::new();
        let mut moved_any = false;
        loop {
            let mut moved = false;
            for v in 0..n {
                let own = community[v];
                for &(u, w) in &self.adjacent[v] {
                    let c = community[u as usize];
                    if weight_to[c as usize] == 0.0 {
                        touched.push(c);
                    }
                    weight_to[c as usize] += w;
                }
                total[own as usize] -= degree[v];
                // The gain of joining `c`, up to a factor common to every `c`.
                let gain = |c: u32, weight: f64| weight - total[c as usize] * degree[v] / two_m;
                let mut best = own;
                let mut best_gain = gain(own, weight_to[own as usize]);
                for &c in &touched {
                    let candidate = gain(c, weight_to[c as usize]);
                    if candidate > best_gain + 1e-12 {
                        (best, best_gain) = (c, candidate);
                    }
                }
                total[best as usize] += degree[v];
                if best != own {
                    community[v] = best;
                    moved = true;
                }
                for c in touched.drain(..) {
                    weight_to[c as usize] = 0.0;
                }
            }
            if !moved {
                break;
            }
            moved_any = true;
        }
        renumber(&mut community);
        (community, moved_any)
    }

    /// The graph whose vertices are the communities of `community` (`count` of them).
    fn aggregate(&self, community: &[u32]) -> Level {
        let count = community.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        let mut edges = Vec::new();
        for (v, list) in self.adjacent.iter().enumerate() {
            let cv = community[v];
            edges.push((cv, cv, self.self_loops[v]));
            for &(u, w) in list {
                // Each undirected edge is listed from both ends: keep it once.
                if (u as usize) > v {
                    edges.push((cv, community[u as usize], w));
                }
            }
        }
        Level::new(count, edges)
    }
}

/// Renumbers communities densely in order of first appearance.
fn renumber(community: &mut [u32]) {
    let mut dense = vec![u32::MAX; community.len()];
    let mut next = 0u32;
    for c in community.iter_mut() {
        if dense[*c as usize] == u32::MAX {
            dense[*c as usize] = next;
            next += 1;
        }
        *c = dense[*c as usize];
    }
}

/// Louvain on the graph of `n` vertices and undirected `edges` (u, v, weight; parallel edges
/// add up, self-loops allowed): each vertex's community, numbered densely.
pub fn louvain(n: usize, edges: &[(u32, u32, f64)]) -> Vec<u32> {
    let mut level = Level::new(n, edges.iter().copied());
    let two_m: f64 = (0..n).map(|v| level.degree(v)).sum();
    let mut membership: Vec<u32> = (0..n as u32).collect();
    if two_m == 0.0 {
        return membership;
    }
    loop {
        let (community, moved) = level.move_vertices(two_m);
        if !moved {
            return membership;
        }
        for c in membership.iter_mut() {
            *c = community[*c as usize];
        }
        level = level.aggregate(&community);
    }
}

/// The modularity of a partition and each community's part of it (indexed by community).
pub fn modularity(edges: &[(u32, u32, f64)], community: &[u32]) -> (f64, Vec<f64>) {
    let count = community.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
    let mut inside = vec![0.0; count];
    let mut degrees = vec![0.0; count];
    let mut m = 0.0;
    for &(u, v, w) in edges {
        m += w;
        let (cu, cv) = (community[u as usize] as usize, community[v as usize] as usize);
        degrees[cu] += w;
        degrees[cv] += w;
        if cu == cv {
            inside[cu] += w;
        }
    }
    if m == 0.0 {
        return (0.0, vec![0.0; count]);
    }
    let parts: Vec<f64> = inside.iter().zip(&degrees).map(|(l, d)| l / m - (d / (2.0 * m)).powi(2)).collect();
    (parts.iter().sum(), parts)
}

/// Louvain over every worker's part (`parts[worker]`), numbered by worker then member index;
/// communities named by their smallest member and sorted by it.
pub(crate) fn gathered(lsn: Lsn, parts: Vec<Part>) -> Grouped {
    let mut offsets = vec![0u32; parts.len() + 1];
    for (worker, (ids, _)) in parts.iter().enumerate() {
        offsets[worker + 1] = offsets[worker] + ids.len() as u32;
    }
    let mut names = Vec::with_capacity(offsets.last().copied().unwrap_or(0) as usize);
    let mut edges = Vec::new();
    for (worker, (ids, part)) in parts.into_iter().enumerate() {
        names.extend(ids);
        edges.extend(
            part.into_iter().map(|(i, owner, index)| (offsets[worker] + i, offsets[owner as usize] + index, 1.0)),
        );
    }
    let community = louvain(names.len(), &edges);
    let (modularity, parts) = modularity(&edges, &community);
    let mut members: Vec<Vec<Id>> = vec![Vec::new(); parts.len().max(1)];
    for (name, c) in names.into_iter().zip(&community) {
        members[*c as usize].push(name);
    }
    let mut communities: Vec<Community> = members
        .into_iter()
        .zip(parts.into_iter().chain(std::iter::repeat(0.0)))
        .filter(|(members, _)| !members.is_empty())
        .map(|(mut members, modularity)| {
            members.sort();
            Community { id: members[0].clone(), members, modularity }
        })
        .collect();
    communities.sort_by(|a, b| a.id.cmp(&b.id));
    Grouped { lsn, communities, modularity }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cliques_joined_by_one_edge_split_in_two() {
        let mut edges = Vec::new();
        for (a, b) in [(0, 4), (4, 8)] {
            for u in a..b {
                for v in u + 1..b {
                    edges.push((u, v, 1.0));
                }
            }
        }
        edges.push((3, 4, 1.0));
        let community = louvain(8, &edges);
        assert!(community[..4].iter().all(|&c| c == community[0]));
        assert!(community[4..].iter().all(|&c| c == community[4]));
        assert_ne!(community[0], community[4]);
        let (q, parts) = modularity(&edges, &community);
        // m = 13; each side: 6 inside, degree 13 → 6/13 - (13/26)^2.
        let side = 6.0 / 13.0 - 0.25;
        assert!((q - 2.0 * side).abs() < 1e-12, "{q}");
        assert_eq!(parts.len(), 2);
    }

    #[test]
    fn self_loops_and_an_empty_graph() {
        assert_eq!(louvain(3, &[]), vec![0, 1, 2]);
        let (q, _) = modularity(&[(0, 0, 2.0)], &[0]);
        // One community holding everything: 2/2 - (4/4)^2 = 0.
        assert!(q.abs() < 1e-12);
    }
}
