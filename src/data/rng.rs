//! Counter-based random streams: every draw is a pure function of (seed, epoch, example, purpose).
//!
//! Workers finish examples in any order, and a resumed run starts in the middle of an epoch; both
//! must see the same random numbers as an uninterrupted single-threaded run. Keying a ChaCha8
//! generator by (seed, epoch, purpose) and selecting its 64-bit stream by the example index gives
//! each example its own independent sequence without any shared state.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is used for. Separate purposes keep, for example, the number of draws made by
/// RandAugment from shifting the mixup weights of the same example.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// The permutation of an epoch (one stream per epoch, example index 0).
    Shuffle = 1,
    /// Crop, flip and RandAugment of one example.
    Augment = 2,
    /// Mixup weight or CutMix box of one example.
    Mix = 3,
}

/// The random stream of `purpose` for example `index` of `epoch` under `seed`.
pub fn stream(seed: u64, epoch: u64, index: u64, purpose: Purpose) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&(purpose as u64).to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(index);
    rng
}

/// The order in which an epoch visits the examples `0..len`: a Fisher-Yates shuffle driven by the
/// epoch's stream when `shuffle` is set, the identity otherwise.
pub fn epoch_order(len: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        use rand::seq::SliceRandom;
        order.shuffle(&mut stream(seed, epoch, 0, Purpose::Shuffle));
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: u64 = stream(7, 1, 5, Purpose::Augment).gen();
        assert_eq!(a, stream(7, 1, 5, Purpose::Augment).gen::<u64>());
        assert_ne!(a, stream(7, 1, 6, Purpose::Augment).gen::<u64>());
        assert_ne!(a, stream(7, 2, 5, Purpose::Augment).gen::<u64>());
        assert_ne!(a, stream(8, 1, 5, Purpose::Augment).gen::<u64>());
        assert_ne!(a, stream(7, 1, 5, Purpose::Mix).gen::<u64>());
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let order = epoch_order(100, 3, 0, true);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(order, sorted);
        assert_eq!(order, epoch_order(100, 3, 0, true));
        assert_ne!(order, epoch_order(100, 3, 1, true));
        assert_eq!(epoch_order(5, 3, 0, false), vec![0, 1, 2, 3, 4]);
    }
}
