//! Greedy k-center coreset (PatchCore's approximate greedy sampler): a subset of the bank that
//! covers every feature, used when a full bank is kept instead of (or besides) prototypes.
//!
//! As in PatchCore, features wider than [`PROJECTION_DIM`] are first mapped by a fixed random
//! linear projection (seeded; a Johnson-Lindenstrauss map roughly preserves distances), and the
//! starting distances are the mean distance to a few random anchor points, so the first pick is
//! an outlying point rather than a random one.

use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::kernels::distance::row_sq_norms;
use crate::error::{Error, Result};

/// Width of the random projection applied to wider features.
pub const PROJECTION_DIM: usize = 128;

/// Number of random anchors whose mean distance seeds the selection (PatchCore uses 10).
const START_POINTS: usize = 10;

/// Selects `m` rows of `x` by greedy k-center (farthest-point) selection and returns their
/// indices in selection order. Seeded: same input and seed, same indices.
/// Errors if `x` is empty, contains non-finite values, or `m` is 0 or more than the row count.
pub fn greedy_coreset(x: ArrayView2<f32>, m: usize, seed: u64) -> Result<Vec<usize>> {
    let (n, d) = x.dim();
    if n == 0 || d == 0 {
        return Err(Error::invalid(format!("greedy_coreset: input is {n} x {d}, needs at least 1 x 1")));
    }
    if m == 0 || m > n {
        return Err(Error::invalid(format!("greedy_coreset: m = {m} must be in 1..={n} (the number of rows)")));
    }
    if let Some(((i, j), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::invalid(format!("greedy_coreset: input[{i}, {j}] is not finite ({v})")));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let z: CowArray<f32, Ix2> = if d > PROJECTION_DIM {
        // Rademacher entries scaled so squared norms are preserved in expectation.
        let s = 1.0 / (PROJECTION_DIM as f32).sqrt();
        let proj = Array2::from_shape_fn((d, PROJECTION_DIM), |_| if rng.random::<bool>() { s } else { -s });
        x.dot(&proj).into()
    } else {
        x.into()
    };
    let norms = row_sq_norms(z.view());
    if let Some(i) = norms.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(format!("greedy_coreset: input row {i} is too large (its squared norm overflows f32)")));
    }
    let dist_to = |j: usize| {
        let dots = z.dot(&z.row(j));
        let nj = norms[j];
        dots.into_iter().zip(norms.iter()).map(move |(dot, &ni)| ((ni + nj - 2.0 * dot).max(0.0)).sqrt())
    };

    let starts = sample(&mut rng, n, START_POINTS.min(n));
    let mut dist = vec![0.0f32; n];
    for j in starts.iter() {
        for (acc, dj) in dist.iter_mut().zip(dist_to(j)) {
            *acc += dj;
        }
    }
    let inv = 1.0 / starts.len() as f32;
    dist.iter_mut().for_each(|v| *v *= inv);

    let mut chosen = Vec::with_capacity(m);
    for _ in 0..m {
        // First index of the largest distance; chosen rows hold -inf and are never re-picked.
        let (pick, _) = dist
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best });
        chosen.push(pick);
        dist[pick] = f32::NEG_INFINITY;
        if chosen.len() < m {
            for (cur, dj) in dist.iter_mut().zip(dist_to(pick)) {
                *cur = cur.min(dj);
            }
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster_with_outliers(dim: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::from_shape_fn((60, dim), |_| rng.random_range(-0.5..0.5f32));
        let outliers = vec![7, 23, 51];
        for (o, &row) in outliers.iter().enumerate() {
            // Far out, each in its own direction.
            x[[row, o]] += 40.0 + 10.0 * o as f32;
        }
        (x, outliers)
    }

    #[test]
    fn bank_coreset_picks_outliers_first() {
        for dim in [5, 200] {
            let (x, outliers) = cluster_with_outliers(dim, 3);
            let picked = greedy_coreset(x.view(), 3, 0).unwrap();
            let mut sorted = picked.clone();
            sorted.sort();
            assert_eq!(sorted, outliers, "dim {dim}: picked {picked:?}");
        }
    }

    #[test]
    fn bank_coreset_distinct_and_seeded() {
        let (x, _) = cluster_with_outliers(6, 4);
        let all = greedy_coreset(x.view(), 60, 1).unwrap();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, (0..60).collect::<Vec<_>>());
        assert_eq!(greedy_coreset(x.view(), 20, 9).unwrap(), greedy_coreset(x.view(), 20, 9).unwrap());
        // Duplicate rows: still distinct indices.
        let dup = Array2::<f32>::zeros((8, 3));
        let picked = greedy_coreset(dup.view(), 8, 0).unwrap();
        let mut s = picked.clone();
        s.sort();
        s.dedup();
        assert_eq!(s.len(), 8);
    }

    #[test]
    fn bank_coreset_covers_greedily() {
        // 1-D points 0, 1, 2, 3, 10; all five are anchors. Mean anchor distances:
        // 3.2, 2.6, 2.4, 2.6, 6.8 -> pick 10 (index 4). Then min(mean, |p - 10|) =
        // 3.2, 2.6, 2.4, 2.6 -> pick 0. Then min(.., |p - 0|) = 1, 2, 2.6 -> pick 3.
        let x = Array2::from_shape_vec((5, 1), vec![0.0, 1.0, 2.0, 3.0, 10.0]).unwrap();
        let picked = greedy_coreset(x.view(), 3, 0).unwrap();
        assert_eq!(picked, vec![4, 0, 3]);
    }

    #[test]
    fn bank_coreset_errors() {
        let x = Array2::<f32>::zeros((4, 2));
        assert!(greedy_coreset(x.view(), 0, 0).is_err());
        assert!(greedy_coreset(x.view(), 5, 0).is_err());
        assert!(greedy_coreset(Array2::<f32>::zeros((0, 2)).view(), 1, 0).is_err());
        let mut bad = x.clone();
        bad[[0, 0]] = f32::NAN;
        assert!(greedy_coreset(bad.view(), 2, 0).is_err());
    }
}
