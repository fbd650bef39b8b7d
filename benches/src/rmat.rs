//! R-MAT graphs (Chakrabarti, Zhan and Faloutsos): power-law degree distributions like
//! social and web graphs, from a seed, so every run measures the same graph.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `edges` directed edges over `2^scale` vertices, with the usual partition probabilities
/// (a, b, c) = (0.57, 0.19, 0.19). Self-loops and repeated pairs are kept, as R-MAT gives them.
pub fn rmat(scale: u32, edges: usize, seed: u64) -> Vec<(u32, u32)> {
    let (a, b, c) = (0.57, 0.19, 0.19);
    let mut rng = StdRng::seed_from_u64(seed);
    (0..edges)
        .map(|_| {
            let (mut src, mut dst) = (0u32, 0u32);
            for bit in (0..scale).rev() {
                let r: f64 = rng.random();
                let (s, d) = if r < a {
                    (0, 0)
                } else if r < a + b {
                    (0, 1)
                } else if r < a + b + c {
                    (1, 0)
                } else {
                    (1, 1)
                };
                src |= s << bit;
                dst |= d << bit;
            }
            (src, dst)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_graph_and_skewed_degrees() {
        let edges = rmat(10, 8192, 1);
        assert_eq!(edges, rmat(10, 8192, 1));
        let mut degree = vec![0usize; 1024];
        for (s, _) in &edges {
            degree[*s as usize] += 1;
        }
        degree.sort_unstable();
        // Power law: the largest out-degree dwarfs the median.
        assert!(degree[1023] > 20 * degree[512].max(1), "max {} median {}", degree[1023], degree[512]);
    }
}
