//! The training-aware reward of the EfficientNetV2 search: `A * S^w * P^v`, with accuracy A,
//! the training-step time S and the parameter count P both normalised by the backbone's, and
//! the paper's weights w = -0.07 and v = -0.05.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// The exponents of step time and parameter count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardWeights {
    /// `w`; negative: slower steps score lower.
    pub step_time: f64,
    /// `v`; negative: more parameters score lower.
    pub params: f64,
}

impl RewardWeights {
    /// The paper's weights (section 3.2).
    pub const PAPER: RewardWeights = RewardWeights {
        step_time: -0.07,
        params: -0.05,
    };

    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.step_time.is_finite() && self.params.is_finite(),
            "field `reward`: the weights must be finite numbers, got {self:?}"
        );
        Ok(())
    }

    /// `accuracy * (step_seconds / reference_step)^w * (params / reference_params)^v`.
    pub fn reward(&self, accuracy: f64, step: Normalised, params: Normalised) -> f64 {
        accuracy * step.ratio().powf(self.step_time) * params.ratio().powf(self.params)
    }
}

/// A value and the backbone's, which it is measured against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalised {
    pub value: f64,
    pub reference: f64,
}

impl Normalised {
    fn ratio(self) -> f64 {
        self.value / self.reference
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(value: f64, reference: f64) -> Normalised {
        Normalised { value, reference }
    }

    #[test]
    fn the_reward_matches_hand_computed_values() {
        let w = RewardWeights::PAPER;
        // The backbone itself scores its accuracy.
        assert_eq!(w.reward(0.8, n(2.0, 2.0), n(5e6, 5e6)), 0.8);
        // Twice as slow: 0.8 * 2^-0.07 = 0.762110...
        let slower = w.reward(0.8, n(4.0, 2.0), n(5e6, 5e6));
        assert!((slower - 0.762_110_4).abs() < 1e-6, "{slower}");
        // Half the parameters: 0.8 * 0.5^-0.05 = 0.828212...
        let smaller = w.reward(0.8, n(2.0, 2.0), n(2.5e6, 5e6));
        assert!((smaller - 0.828_211_9).abs() < 1e-6, "{smaller}");
        // Both: 0.9 * 0.8^-0.07 * 1.5^-0.05 = 0.895822...
        let both = w.reward(0.9, n(0.8, 1.0), n(1.5, 1.0));
        let expected = 0.9 * 0.8f64.powf(-0.07) * 1.5f64.powf(-0.05);
        assert!((both - expected).abs() < 1e-12);
        assert!((both - 0.895_822).abs() < 1e-5, "{both}");
    }
}
