//! Splitting the one run seed into independent streams, one per component.
//!
//! Each component (the network's loss draws, the partition schedule, the
//! workload, each node's core) gets its own generator, seeded by hashing the
//! run seed with the component's name and index. Turning a fault on or off
//! then changes only the streams that fault draws from: the workload's
//! choices, the other faults' schedules and the nodes' seeds stay put.

use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use xxhash_rust::xxh3::Xxh3;

/// The generator every component of the simulator draws from.
pub type SimRng = Xoshiro256PlusPlus;

/// The seed of component `component`, instance `index`, in run `seed`.
pub fn derive(seed: u64, component: &str, index: u64) -> u64 {
    let mut hasher = Xxh3::with_seed(seed);
    hasher.update(component.as_bytes());
    // A separator so ("ab", ..) and ("a", ..) never share a prefix.
    hasher.update(&[0xff]);
    hasher.update(&index.to_le_bytes());
    hasher.digest()
}

/// A generator for component `component`, instance `index`, in run `seed`.
pub fn rng(seed: u64, component: &str, index: u64) -> SimRng {
    SimRng::seed_from_u64(derive(seed, component, index))
}

/// True with probability `p` (clamped to `[0, 1]`).
pub fn chance(rng: &mut SimRng, p: f64) -> bool {
    if p <= 0.0 {
        return false;
    }
    if p >= 1.0 {
        return true;
    }
    rng.random_bool(p)
}

/// A uniform draw from `[lo, hi)`; `lo` when the range is empty.
pub fn uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    if hi <= lo {
        return lo;
    }
    lo + rng.random::<f64>() * (hi - lo)
}

/// A uniform integer from `[lo, hi]`; `lo` when the range is empty.
pub fn between(rng: &mut SimRng, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    rng.random_range(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn components_get_distinct_reproducible_streams() {
        assert_eq!(derive(1, "net.loss", 0), derive(1, "net.loss", 0));
        assert_ne!(derive(1, "net.loss", 0), derive(1, "net.dup", 0));
        assert_ne!(derive(1, "node", 0), derive(1, "node", 1));
        assert_ne!(derive(1, "node", 0), derive(2, "node", 0));
        assert_eq!(rng(5, "workload", 0).next_u64(), rng(5, "workload", 0).next_u64());
    }
}
