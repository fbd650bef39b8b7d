//! The COST baseline: PageRank (LDBC definition, damping 0.85) over a CSR in one thread, the
//! figure every distributed PageRank here is set beside.

use std::time::Instant;

/// The COST baseline: PageRank over a CSR in one thread (LDBC definition); seconds taken.
pub fn pagerank_seconds(vertices: usize, edges: &[(u32, u32)], iterations: u32) -> f64 {
    let started = Instant::now();
    let mut offsets = vec![0usize; vertices + 1];
    for (s, _) in edges {
        offsets[*s as usize + 1] += 1;
    }
    for i in 0..vertices {
        offsets[i + 1] += offsets[i];
    }
    let mut targets = vec![0u32; edges.len()];
    let mut fill = offsets.clone();
    for (s, d) in edges {
        targets[fill[*s as usize]] = *d;
        fill[*s as usize] += 1;
    }
    let n = vertices as f64;
    let d = 0.85;
    let mut rank = vec![1.0 / n; vertices];
    let mut next = vec![0.0; vertices];
    for _ in 0..iterations {
        let mut dangling = 0.0;
        next.iter_mut().for_each(|x| *x = 0.0);
        for v in 0..vertices {
            let (lo, hi) = (offsets[v], offsets[v + 1]);
            if lo == hi {
                dangling += rank[v];
                continue;
            }
            let share = rank[v] / (hi - lo) as f64;
            for &t in &targets[lo..hi] {
                next[t as usize] += share;
            }
        }
        let base = (1.0 - d) / n + d * dangling / n;
        for (r, x) in rank.iter_mut().zip(&next) {
            *r = base + d * x;
        }
    }
    std::hint::black_box(&rank);
    started.elapsed().as_secs_f64()
}
