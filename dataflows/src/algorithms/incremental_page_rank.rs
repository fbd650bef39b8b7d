//! PageRank kept current under edge and vertex changes by residual push, with work local to
//! each change: the state behind a standing PageRank subscription.
//!
//! With uniform teleport and dangling rank spread evenly, PageRank is the L1-normalisation of
//! the `x` solving `x = (1 - d)·1 + d·Pᵀx`, where `P` has a row `1/outdeg(u)` per edge of `u`
//! and zero rows for dangling vertices. We keep an estimate `p` and a residual `r` with the
//! invariant `r = (1 - d)·1 - p + d·Pᵀp`, and push (move a residual into the estimate and
//! pass `d`-scaled shares to the out-neighbours) until every residual is within `ε`. Then
//! each estimate is within a relative `ε/(1 - d)` of `x` (because `(I - dPᵀ)⁻¹·1 = x/(1-d)`),
//! and a normalised score within twice that.
//!
//! An edge change at `u` keeps the invariant with O(1) work: rescale `p[u]` so that the share
//! it sends along each other edge stays the same, charge the difference to `r[u]`, and give
//! (or take) one share at the edge's target. Only then do pushes spread, as far as the change
//! matters. (Zhang, Lofgren and Goel, "Approximate Personalized PageRank on Dynamic Graphs",
//! KDD 2016.) A cold start pushes from zero, which is slow; [`IncrementalPageRank::new`]
//! starts from a power iteration's estimate and pushes only what it leaves.
//!
//! Vertices are dense indexes (`u32`) chosen by the caller; the normaliser (the sum of the
//! estimates) is kept as a running sum, so a score costs O(1).

use std::collections::VecDeque;

/// Power iterations at most before the pushes take over at start.
const START_ITERATIONS: usize = 200;

/// The running sum of estimates is recomputed exactly after this many changes, so that
/// rounding cannot pile up over a long-lived subscription.
const RESUM_EVERY: u64 = 100_000;

pub struct IncrementalPageRank {
    damping: f64,
    /// ε: every residual is kept within it.
    tolerance: f64,
    present: Vec<bool>,
    /// Out-neighbours per vertex, one entry per edge (parallel edges repeat).
    out: Vec<Vec<u32>>,
    estimate: Vec<f64>,
    residual: Vec<f64>,
    /// Vertices in `pending` (so that each is queued once).
    queued: Vec<bool>,
    /// Vertices whose residual may exceed the tolerance.
    pending: VecDeque<u32>,
    /// Σ estimate over present vertices.
    total: f64,
    changes_since_resum: u64,
    /// Vertices whose estimate changed since [`IncrementalPageRank::take_changed`].
    changed: Vec<u32>,
    marked: Vec<bool>,
}

impl IncrementalPageRank {
    #[cfg(test)]
    /// The graph of `vertices` and `edges` (each `(from, to)` a separate edge; both ends must
    /// be among `vertices`), settled.
    pub fn new(
        vertices: impl IntoIterator<Item = u32>,
        edges: impl IntoIterator<Item = (u32, u32)>,
        damping: f64,
        tolerance: f64,
    ) -> Self {
        let mut state = Self::unsettled(vertices, edges, damping, tolerance);
        state.settle();
        state.changed.clear();
        state.marked.iter_mut().for_each(|m| *m = false);
        state
    }

    /// As [`IncrementalPageRank::new`], with the power iterations done and the pushes they
    /// leave still to run ([`IncrementalPageRank::settle_within`]); the vertices whose
    /// estimate those pushes change are reported as changed.
    pub fn unsettled(
        vertices: impl IntoIterator<Item = u32>,
        edges: impl IntoIterator<Item = (u32, u32)>,
        damping: f64,
        tolerance: f64,
    ) -> Self {
        let mut state = IncrementalPageRank {
            damping,
            tolerance,
            present: Vec::new(),
            out: Vec::new(),
            estimate: Vec::new(),
            residual: Vec::new(),
            queued: Vec::new(),
            pending: VecDeque::new(),
            total: 0.0,
            changes_since_resum: 0,
            changed: Vec::new(),
            marked: Vec::new(),
        };
        for vertex in vertices {
            state.grow_to(vertex);
            state.present[vertex as usize] = true;
        }
        for (from, to) in edges {
            if state.is_present(from) && state.is_present(to) {
                state.out[from as usize].push(to);
            }
        }
        state.start();
        state
    }

    /// A power iteration's estimate of `x` (until it moves less than ε), then the exact
    /// residuals it leaves, queued for pushes.
    fn start(&mut self) {
        let n = self.present.len();
        let base = 1.0 - self.damping;
        let mut estimate: Vec<f64> = self.present.iter().map(|&p| if p { base } else { 0.0 }).collect();
        let mut next = vec![0.0; n];
        for _ in 0..START_ITERATIONS {
            for (slot, &present) in next.iter_mut().zip(&self.present) {
                *slot = if present { base } else { 0.0 };
            }
            for (from, targets) in self.out.iter().enumerate() {
                if targets.is_empty() {
                    continue;
                }
                let share = self.damping * estimate[from] / targets.len() as f64;
                for &to in targets {
                    next[to as usize] += share;
                }
            }
            let moved = estimate.iter().zip(&next).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            std::mem::swap(&mut estimate, &mut next);
            if moved < self.tolerance {
                break;
            }
        }
        self.estimate = estimate;
        // r = (1 - d) - p + d·Pᵀp, from scratch.
        let mut residual: Vec<f64> =
            self.estimate.iter().zip(&self.present).map(|(p, &present)| if present { base - p } else { 0.0 }).collect();
        for (from, targets) in self.out.iter().enumerate() {
            if targets.is_empty() {
                continue;
            }
            let share = self.damping * self.estimate[from] / targets.len() as f64;
            for &to in targets {
                residual[to as usize] += share;
            }
        }
        self.residual = residual;
        for vertex in 0..n as u32 {
            if self.residual[vertex as usize].abs() > self.tolerance {
                self.enqueue(vertex);
            }
        }
        self.resum();
    }

    fn grow_to(&mut self, vertex: u32) {
        let needed = vertex as usize + 1;
        if self.present.len() < needed {
            self.present.resize(needed, false);
            self.out.resize_with(needed, Vec::new);
            self.estimate.resize(needed, 0.0);
            self.residual.resize(needed, 0.0);
            self.queued.resize(needed, false);
            self.marked.resize(needed, false);
        }
    }

    pub fn is_present(&self, vertex: u32) -> bool {
        self.present.get(vertex as usize).copied().unwrap_or(false)
    }

    fn enqueue(&mut self, vertex: u32) {
        if !self.queued[vertex as usize] {
            self.queued[vertex as usize] = true;
            self.pending.push_back(vertex);
        }
    }

    fn add_residual(&mut self, vertex: u32, amount: f64) {
        let slot = &mut self.residual[vertex as usize];
        *slot += amount;
        if slot.abs() > self.tolerance {
            self.enqueue(vertex);
        }
    }

    fn set_estimate(&mut self, vertex: u32, value: f64) {
        let slot = &mut self.estimate[vertex as usize];
        self.total += value - *slot;
        *slot = value;
        if !self.marked[vertex as usize] {
            self.marked[vertex as usize] = true;
            self.changed.push(vertex);
        }
    }

    fn resum(&mut self) {
        self.total = self.estimate.iter().zip(&self.present).filter(|(_, &p)| p).map(|(e, _)| e).sum();
        self.changes_since_resum = 0;
    }

    /// Adds a vertex without edges (nothing if it is there).
    pub fn insert_vertex(&mut self, vertex: u32) {
        if self.is_present(vertex) {
            return;
        }
        self.grow_to(vertex);
        self.present[vertex as usize] = true;
        self.estimate[vertex as usize] = 0.0;
        self.residual[vertex as usize] = 0.0;
        self.set_estimate(vertex, 0.0);
        self.add_residual(vertex, 1.0 - self.damping);
    }

    /// Removes a vertex that has no edges left (remove its edges first).
    pub fn remove_vertex(&mut self, vertex: u32) {
        if !self.is_present(vertex) {
            return;
        }
        self.set_estimate(vertex, 0.0);
        let v = vertex as usize;
        self.present[v] = false;
        self.out[v] = Vec::new();
        self.residual[v] = 0.0;
    }

    /// Adds one edge `from -> to` (both vertices must be present).
    pub fn insert_edge(&mut self, from: u32, to: u32) {
        if !(self.is_present(from) && self.is_present(to)) {
            return;
        }
        let degree = self.out[from as usize].len();
        let p = self.estimate[from as usize];
        if degree > 0 {
            // Keep the share along the existing edges: p/k = p'/(k+1).
            let rescaled = p * (degree + 1) as f64 / degree as f64;
            self.set_estimate(from, rescaled);
            self.add_residual(from, p - rescaled);
            self.add_residual(to, self.damping * p / degree as f64);
        } else {
            // A dangling vertex starts sending: its whole estimate along the one edge.
            self.add_residual(to, self.damping * p);
        }
        self.out[from as usize].push(to);
        self.count_change();
    }

    /// Removes one edge `from -> to` (nothing if there is none).
    pub fn remove_edge(&mut self, from: u32, to: u32) {
        if !self.is_present(from) {
            return;
        }
        let targets = &mut self.out[from as usize];
        let Some(position) = targets.iter().position(|&t| t == to) else { return };
        let degree = targets.len();
        targets.swap_remove(position);
        let p = self.estimate[from as usize];
        if degree > 1 {
            let rescaled = p * (degree - 1) as f64 / degree as f64;
            self.set_estimate(from, rescaled);
            self.add_residual(from, p - rescaled);
        }
        // Becoming dangling, `from` keeps its estimate: it just sends nothing any more.
        if self.is_present(to) {
            self.add_residual(to, -self.damping * p / degree as f64);
        }
        self.count_change();
    }

    fn count_change(&mut self) {
        self.changes_since_resum += 1;
        if self.changes_since_resum >= RESUM_EVERY {
            self.resum();
        }
    }

    #[cfg(test)]
    /// Pushes until every residual is within the tolerance; returns the edges visited by the
    /// pushes (the work the last changes cost, comparable to a power iteration's edge visits).
    pub fn settle(&mut self) -> u64 {
        self.settle_within(u64::MAX).0
    }

    /// Pushes until every residual is within the tolerance or about `budget` edges have been
    /// visited, whichever comes first; returns the edges visited and whether it is settled.
    /// The pushes left over stay queued: the invariant holds between calls, so changes may
    /// be applied before the pushes of earlier ones are done.
    pub fn settle_within(&mut self, budget: u64) -> (u64, bool) {
        let mut visits = 0;
        while visits < budget {
            let Some(vertex) = self.pending.pop_front() else { break };
            let v = vertex as usize;
            self.queued[v] = false;
            let amount = self.residual[v];
            if !self.present[v] || amount.abs() <= self.tolerance {
                continue;
            }
            self.residual[v] = 0.0;
            self.set_estimate(vertex, self.estimate[v] + amount);
            // Borrow the targets out while residuals change (no copy of a hub's list).
            let targets = std::mem::take(&mut self.out[v]);
            visits += targets.len() as u64;
            if !targets.is_empty() {
                let share = self.damping * amount / targets.len() as f64;
                for &to in &targets {
                    self.add_residual(to, share);
                }
            }
            self.out[v] = targets;
        }
        (visits, self.pending.is_empty())
    }

    /// A vertex's normalised score (scores sum to 1), if it is present.
    pub fn score(&self, vertex: u32) -> Option<f64> {
        self.is_present(vertex).then(|| self.estimate[vertex as usize] / self.total)
    }

    /// The unnormalised estimate, which orders vertices as their scores do.
    pub fn estimate(&self, vertex: u32) -> f64 {
        self.estimate.get(vertex as usize).copied().unwrap_or(0.0)
    }

    #[cfg(test)]
    /// Every present vertex's normalised score.
    pub fn scores(&self) -> Vec<(u32, f64)> {
        (0..self.present.len() as u32).filter_map(|v| self.score(v).map(|s| (v, s))).collect()
    }

    /// Hands over the vertices whose estimate changed since the last call.
    pub fn take_changed(&mut self, into: &mut Vec<u32>) {
        for &vertex in &self.changed {
            self.marked[vertex as usize] = false;
        }
        into.append(&mut self.changed);
    }

    /// The relative error each normalised score is guaranteed within: estimates are within
    /// `δ = ε/(1 - d)` of `x`, and so is their sum, so a ratio is within `2δ/(1 - δ)`.
    pub fn error_bound(&self) -> f64 {
        let per_estimate = self.tolerance / (1.0 - self.damping);
        2.0 * per_estimate / (1.0 - per_estimate)
    }

    /// The residual tolerance ε that makes [`IncrementalPageRank::error_bound`] equal
    /// `relative` (for `relative` > 0 and a damping below 1).
    pub fn tolerance_for(relative: f64, damping: f64) -> f64 {
        relative / (2.0 + relative) * (1.0 - damping)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn scores(state: &IncrementalPageRank) -> HashMap<u32, f64> {
        state.scores().into_iter().collect()
    }

    /// Converged LDBC PageRank by plain power iteration.
    fn reference(n: u32, edges: &[(u32, u32)], d: f64) -> HashMap<u32, f64> {
        let mut out: HashMap<u32, Vec<u32>> = (0..n).map(|v| (v, Vec::new())).collect();
        for (a, b) in edges {
            out.get_mut(a).unwrap().push(*b);
        }
        let nf = n as f64;
        let mut rank: HashMap<u32, f64> = (0..n).map(|v| (v, 1.0 / nf)).collect();
        for _ in 0..200 {
            let dangling: f64 = out.iter().filter(|(_, t)| t.is_empty()).map(|(v, _)| rank[v]).sum();
            let mut next: HashMap<u32, f64> = (0..n).map(|v| (v, (1.0 - d) / nf + d * dangling / nf)).collect();
            for (v, targets) in &out {
                for t in targets {
                    *next.get_mut(t).unwrap() += d * rank[v] / targets.len() as f64;
                }
            }
            rank = next;
        }
        rank
    }

    fn lcg(state: &mut u64) -> u32 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*state >> 33) as u32
    }

    fn assert_close(got: &HashMap<u32, f64>, want: &HashMap<u32, f64>, relative: f64) {
        assert_eq!(got.len(), want.len());
        for (v, w) in want {
            let g = got[v];
            assert!((g - w).abs() <= relative * w, "vertex {v}: {g} vs {w} (relative {})", (g - w).abs() / w);
        }
    }

    #[test]
    fn settles_to_pagerank_and_follows_inserts_and_deletes_with_local_work() {
        let (n, d, tolerance) = (3000u32, 0.85, 1e-5);
        let mut seed = 7;
        // Vertices 2500.. are dangling; parallel edges and self-loops happen.
        let mut edges: Vec<(u32, u32)> = (0..9000).map(|_| (lcg(&mut seed) % 2500, lcg(&mut seed) % n)).collect();
        let mut state = IncrementalPageRank::new(0..n, edges.clone(), d, tolerance);
        let bound = state.error_bound();
        assert_close(&scores(&state), &reference(n, &edges, d), 10.0 * bound);

        let mut work = Vec::new();
        for step in 0..200 {
            if step % 3 == 2 {
                let (a, b) = edges.swap_remove(lcg(&mut seed) as usize % edges.len());
                state.remove_edge(a, b);
            } else {
                // Sometimes from a dangling vertex, which then starts sending.
                let edge = (lcg(&mut seed) % n, lcg(&mut seed) % n);
                state.insert_edge(edge.0, edge.1);
                edges.push(edge);
            }
            work.push(state.settle());
        }
        assert_close(&scores(&state), &reference(n, &edges, d), 10.0 * bound);
        let total: f64 = scores(&state).values().sum();
        assert!((total - 1.0).abs() < 1e-12);
        // Local work: at the median, a change visits at least ten times fewer edges than a
        // 20-iteration recompute.
        work.sort_unstable();
        let median = work[work.len() / 2] as f64;
        let recompute = 20.0 * edges.len() as f64;
        assert!(median * 10.0 < recompute, "median {median} edge visits vs {recompute}");
    }

    #[test]
    fn vertices_come_and_go() {
        let (d, tolerance) = (0.85, 1e-8);
        let mut state = IncrementalPageRank::new(0..3u32, [(0, 1), (1, 2), (2, 0)], d, tolerance);
        state.insert_vertex(3);
        state.insert_edge(3, 0);
        state.settle();
        assert_close(&scores(&state), &reference(4, &[(0, 1), (1, 2), (2, 0), (3, 0)], d), 1e-5);
        state.remove_edge(3, 0);
        state.remove_vertex(3);
        state.settle();
        assert_close(&scores(&state), &reference(3, &[(0, 1), (1, 2), (2, 0)], d), 1e-5);
    }
}
