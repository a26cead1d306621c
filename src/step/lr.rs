//! Learning-rate schedules of the official recipe (`WarmupLearningRateSchedule` in the
//! EfficientNetV2 code): linear warmup from 0, then exponential (staircase), cosine, linear or
//! constant decay. The decay counts from step 0, not from the end of warmup, and one schedule
//! spans all progressive stages (the global step is never reset).

use serde::{Deserialize, Serialize};

/// How the learning rate decays after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decay {
    /// `lr * factor ^ floor(step / (steps_per_epoch * every_epochs))`.
    Exponential {
        factor: f64,
        every_epochs: f64,
    },
    /// `0.5 * lr * (1 + cos(pi * step / total_steps))`.
    Cosine,
    /// `lr * (1 - step / total_steps)`.
    Linear,
    Constant,
}

/// A resolved schedule: everything needed to evaluate the learning rate at a global step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// Peak learning rate, already scaled for the batch size (see [`scaled_lr`]).
    pub peak: f64,
    pub steps_per_epoch: f64,
    pub warmup_epochs: f64,
    pub total_steps: u64,
    pub decay: Decay,
    /// Floor applied after decay (`lr_min`, 0 in the official recipe).
    pub min_lr: f64,
}

/// The official base-LR scaling: `lr_base * batch_size / 256`.
pub fn scaled_lr(lr_base: f64, batch_size: u64) -> f64 {
    lr_base * batch_size as f64 / 256.0
}

/// Steps per epoch as the official `main.py` counts them (`num_train_images / batch_size`): a
/// float, so that warmup and decay boundaries do not drift when the batch does not divide the
/// data (ImageNet at batch 4096: 306.68 steps, where an integer 306 would warm up for 1,530
/// steps instead of 1,533 and decay every 734.4 steps instead of 736.0).
pub fn steps_per_epoch(examples: u64, batch_size: u64) -> f64 {
    examples as f64 / batch_size as f64
}

/// The steps of `epochs` epochs, as the official `main.py` counts a run's length:
/// `epochs * num_train_images // batch_size` (the product is exact in f64 for any real data set,
/// and flooring it before the integer division gives the same quotient).
pub fn epoch_steps(epochs: f64, examples: u64, batch_size: u64) -> u64 {
    (epochs * examples as f64) as u64 / batch_size
}

impl LrSchedule {
    /// The official ImageNet recipe (RMSProp, `lr_base` 0.016, 5 warmup epochs, 0.97 every 2.4 epochs).
    pub fn official(batch_size: u64, train_images: u64, epochs: f64) -> LrSchedule {
        LrSchedule {
            peak: scaled_lr(0.016, batch_size),
            steps_per_epoch: steps_per_epoch(train_images, batch_size),
            warmup_epochs: 5.0,
            total_steps: epoch_steps(epochs, train_images, batch_size),
            decay: Decay::Exponential {
                factor: 0.97,
                every_epochs: 2.4,
            },
            min_lr: 0.0,
        }
    }

    /// `int(warmup_epochs * steps_per_epoch)`, as the official code truncates it.
    pub fn warmup_steps(&self) -> u64 {
        (self.warmup_epochs * self.steps_per_epoch) as u64
    }

    /// Steps between two exponential decays (`steps_per_epoch * every_epochs`, a float as in
    /// the official code, as [`LrSchedule::at`] uses it); `None` for the other decays.
    pub fn decay_steps(&self) -> Option<f64> {
        match self.decay {
            Decay::Exponential { every_epochs, .. } => Some(self.steps_per_epoch * every_epochs),
            _ => None,
        }
    }

    /// The learning rate for global step `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        let s = step as f64;
        let decayed = match self.decay {
            Decay::Exponential {
                factor,
                every_epochs,
            } => {
                let decay_steps = self.steps_per_epoch * every_epochs;
                self.peak * factor.powf((s / decay_steps).floor())
            }
            Decay::Cosine => {
                0.5 * self.peak * (1.0 + (std::f64::consts::PI * s / self.total_steps as f64).cos())
            }
            Decay::Linear => self.peak * (1.0 - s / self.total_steps as f64),
            Decay::Constant => self.peak,
        };
        let warmup = self.warmup_steps();
        let lr = if step < warmup {
            self.peak * s / warmup as f64
        } else {
            decayed
        };
        lr.max(self.min_lr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    fn unit(decay: Decay, warmup_epochs: f64) -> LrSchedule {
        LrSchedule {
            peak: 1.0,
            steps_per_epoch: 10.0,
            warmup_epochs,
            total_steps: 10,
            decay,
            min_lr: 0.0,
        }
    }

    /// The cases of the official `utils_test.py`.
    #[test]
    fn official_unit_cases() {
        let exp = unit(
            Decay::Exponential {
                factor: 0.5,
                every_epochs: 2.0,
            },
            0.0,
        );
        close(exp.at(5), 1.0, 1e-12);
        close(exp.at(25), 0.5, 1e-12);
        close(exp.at(70), 0.125, 1e-12);
        let warm = unit(Decay::Constant, 2.0);
        close(warm.at(5), 0.25, 1e-12);
        close(warm.at(35), 1.0, 1e-12);
        let cos = unit(Decay::Cosine, 0.0);
        close(cos.at(4), 0.654508, 1e-6);
        close(cos.at(5), 0.5, 1e-12);
        close(cos.at(6), 0.345491, 1e-6);
        close(unit(Decay::Linear, 0.0).at(5), 0.5, 1e-12);
    }

    /// The full-scale ImageNet oracle: batch 4096 over the 1,256,144-image train split, 350 epochs.
    #[test]
    fn full_scale_oracle() {
        let s = LrSchedule::official(4096, 1_256_144, 350.0);
        assert_eq!(s.steps_per_epoch, 306.67578125);
        assert_eq!(s.total_steps, 107_336);
        assert_eq!(s.warmup_steps(), 1533);
        close(s.decay_steps().unwrap(), 736.021875, 1e-9);
        close(s.peak, 0.256, 1e-15);
        let cases = [
            (0, 0.0),
            (1, 1.6699e-4),
            (766, 0.1279165),
            (1532, 0.2558330),
            (1533, 0.2408704),
            (5000, 0.2132408),
            (53668, 0.0285631),
            (107335, 0.0030913),
        ];
        for (step, lr) in cases {
            close(s.at(step), lr, 5e-8_f64.max(lr * 1e-4));
        }
    }
}
