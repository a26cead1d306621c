//! Step-time estimates from a compiled program's cost analysis: a roofline over the chip's peak
//! bf16 FLOP/s and HBM bandwidth.
//!
//! XLA's own `optimal_seconds` is not used as the estimate: for whole train steps libtpu has
//! returned negative values, so it is only shown where it is positive.

use serde::{Deserialize, Serialize};

use super::target::ChipSpec;

/// Which roof bounds the estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    Compute,
    Memory,
}

/// A roofline estimate of one execution on one chip.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    /// `max(flops / peak FLOP/s, bytes accessed / HBM bandwidth)`.
    pub seconds: f64,
    pub bound: Bound,
    /// The share of the chip's peak FLOP/s the estimate implies (model FLOP utilisation).
    pub mfu: f64,
}

impl Roofline {
    /// The estimate for `flops` and `bytes_accessed` per execution; `None` unless both are
    /// positive and finite.
    pub fn new(flops: f64, bytes_accessed: f64, chip: &ChipSpec) -> Option<Roofline> {
        let valid = |v: f64| v.is_finite() && v > 0.0;
        if !valid(flops) || !valid(bytes_accessed) {
            return None;
        }
        let compute = flops / chip.peak_bf16_flops;
        let memory = bytes_accessed / chip.hbm_bytes_per_second;
        let (seconds, bound) = if compute >= memory {
            (compute, Bound::Compute)
        } else {
            (memory, Bound::Memory)
        };
        Some(Roofline {
            seconds,
            bound,
            mfu: flops / seconds / chip.peak_bf16_flops,
        })
    }

    /// Examples per second when one execution processes `examples`.
    pub fn examples_per_second(&self, examples: u64) -> f64 {
        examples as f64 / self.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHIP: ChipSpec = ChipSpec {
        hbm_bytes: 16 << 30,
        peak_bf16_flops: 200e12,
        hbm_bytes_per_second: 800e9,
    };

    #[test]
    fn the_slower_roof_bounds_the_step() {
        // 4 TFLOP at 200 TFLOP/s = 20 ms; 100 GB at 800 GB/s = 125 ms.
        let r = Roofline::new(4e12, 100e9, &CHIP).unwrap();
        assert_eq!(r.bound, Bound::Memory);
        assert!((r.seconds - 0.125).abs() < 1e-12);
        assert!((r.mfu - 0.16).abs() < 1e-12);
        assert!((r.examples_per_second(128) - 1024.0).abs() < 1e-9);
        // 40 TFLOP = 200 ms against 125 ms of traffic: compute-bound at full utilisation.
        let r = Roofline::new(40e12, 100e9, &CHIP).unwrap();
        assert_eq!(r.bound, Bound::Compute);
        assert!((r.seconds - 0.2).abs() < 1e-12);
        assert!((r.mfu - 1.0).abs() < 1e-12);
    }

    #[test]
    fn missing_or_meaningless_costs_give_no_estimate() {
        assert!(Roofline::new(0.0, 1e9, &CHIP).is_none());
        assert!(Roofline::new(1e12, -1.0, &CHIP).is_none());
        assert!(Roofline::new(f64::NAN, 1e9, &CHIP).is_none());
    }
}
