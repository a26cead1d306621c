//! The per-model constants of the training augmentation: size-dependent pixel constants and the
//! RandAugment operation list.
//!
//! The official recipe (spec 6) uses absolute values tuned for 224–480 px ImageNet images: crops
//! down to 5 % (8 % in the legacy B0–B3 pipeline) of the image, translations of up to 100 px
//! (RandAugment) or 250 px (AutoAugment) and cutout squares of half-side up to 40 px (100 px). On
//! small images (28 px Fashion-MNIST) these erase the whole picture, so a recipe may set them, and
//! drop RandAugment operations that make no sense for its data (inverting or solarising greyscale
//! clothing on black). A constant left out takes the official value of the model's pipeline and
//! policy.

use serde::{Deserialize, Serialize};

use super::autoaugment;
use super::crop::{AREA_RANGE, CROP_PADDING, LEGACY_AREA_MIN};
use super::randaugment::{OpSet, PixelConsts, CUTOUT_CONST, TRANSLATE_CONST};
use super::{Policy, Preprocessing};
use crate::data::error::{DataError, Result};

/// Constants of the random crop and of the augmentation policy's level table, and the
/// RandAugment operations.
///
/// Deserialises from `{"crop_area_min": .., "translate_const": .., "cutout_const": ..,
/// "eval_crop_padding": .., "randaugment_ops": ["Rotate", ..]}`; each field may be left out and
/// then takes its official value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSettings {
    /// Smallest random-crop area as a fraction of the image area, in (0, 1]; `None`: the
    /// official value of the pipeline, [`AREA_RANGE`]`.0` or [`LEGACY_AREA_MIN`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crop_area_min: Option<f32>,
    /// Translation in pixels at magnitude [`MAX_LEVEL`](super::randaugment::MAX_LEVEL); `None`:
    /// the official value of the policy, [`TRANSLATE_CONST`] or
    /// [`autoaugment::TRANSLATE_CONST`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub translate_const: Option<f64>,
    /// Half side of the cutout square in pixels at magnitude
    /// [`MAX_LEVEL`](super::randaugment::MAX_LEVEL); `None`: the official value of the policy,
    /// [`CUTOUT_CONST`] or [`autoaugment::CUTOUT_CONST`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutout_const: Option<f64>,
    /// Evaluation crops keep `size / (size + eval_crop_padding)` of the short side (also the
    /// legacy training crop's fallback); official [`CROP_PADDING`] (224 of 256).
    pub eval_crop_padding: f64,
    /// The operations RandAugment picks from; official: all 16.
    pub randaugment_ops: OpSet,
}

impl Default for AugmentSettings {
    /// The official constants.
    fn default() -> Self {
        AugmentSettings {
            crop_area_min: None,
            translate_const: None,
            cutout_const: None,
            eval_crop_padding: CROP_PADDING as f64,
            randaugment_ops: OpSet::ALL,
        }
    }
}

impl AugmentSettings {
    /// The smallest crop area of `preprocessing`: the configured one, else the official one.
    pub fn crop_area_min(&self, preprocessing: Preprocessing) -> f32 {
        self.crop_area_min.unwrap_or(match preprocessing {
            Preprocessing::Standard => AREA_RANGE.0,
            Preprocessing::Legacy => LEGACY_AREA_MIN,
            // No crop: the whole image.
            Preprocessing::Finetune | Preprocessing::Deterministic => 1.0,
        })
    }

    /// The pixel constants of `policy`'s level table: the configured ones, else the official
    /// ones.
    pub fn pixel_consts(&self, policy: Policy) -> PixelConsts {
        let (translate, cutout) = match policy {
            Policy::RandAugment { .. } => (TRANSLATE_CONST, CUTOUT_CONST),
            Policy::AutoAugmentV0 => (autoaugment::TRANSLATE_CONST, autoaugment::CUTOUT_CONST),
        };
        PixelConsts {
            translate: self.translate_const.unwrap_or(translate),
            cutout: self.cutout_const.unwrap_or(cutout),
        }
    }

    /// The first field out of range, with what is wrong with it, or `None` when all are valid.
    /// Field names are those of the JSON form, so callers can point at the spec entry.
    pub fn out_of_range(&self) -> Option<(&'static str, String)> {
        if let Some(area) = self.crop_area_min {
            if !(area > 0.0 && area <= AREA_RANGE.1) {
                return Some((
                    "crop_area_min",
                    format!("must be in (0, {}], got {area}", AREA_RANGE.1),
                ));
            }
        }
        for (field, value) in [
            ("translate_const", self.translate_const),
            ("cutout_const", self.cutout_const),
            ("eval_crop_padding", Some(self.eval_crop_padding)),
        ] {
            match value {
                Some(value) if !(value.is_finite() && value >= 0.0) => {
                    return Some((field, format!("must be a finite number >= 0, got {value}")))
                }
                _ => {}
            }
        }
        None
    }

    /// Checks every field; the error names the field at fault.
    pub fn validate(&self) -> Result<()> {
        match self.out_of_range() {
            Some((field, problem)) => Err(DataError::Config(format!(
                "augment settings {field} {problem}"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_official_constants_of_each_pipeline_and_policy() {
        let official = AugmentSettings::default();
        assert_eq!(official.crop_area_min(Preprocessing::Standard), 0.05);
        assert_eq!(official.crop_area_min(Preprocessing::Legacy), 0.08);
        assert_eq!(
            official.pixel_consts(Policy::RandAugment { layers: 2 }),
            PixelConsts {
                translate: 100.0,
                cutout: 40.0
            }
        );
        assert_eq!(
            official.pixel_consts(Policy::AutoAugmentV0),
            PixelConsts {
                translate: 250.0,
                cutout: 100.0
            }
        );
        assert!(official.validate().is_ok());
        // A configured value applies to every pipeline and policy.
        let small = AugmentSettings {
            crop_area_min: Some(0.35),
            translate_const: Some(12.5),
            ..Default::default()
        };
        assert_eq!(small.crop_area_min(Preprocessing::Legacy), 0.35);
        assert_eq!(small.pixel_consts(Policy::AutoAugmentV0).translate, 12.5);
        assert_eq!(small.pixel_consts(Policy::AutoAugmentV0).cutout, 100.0);
    }

    #[test]
    fn out_of_range_values_are_rejected_naming_the_field() {
        let cases = [
            (
                AugmentSettings {
                    crop_area_min: Some(0.0),
                    ..Default::default()
                },
                "crop_area_min",
            ),
            (
                AugmentSettings {
                    crop_area_min: Some(1.5),
                    ..Default::default()
                },
                "crop_area_min",
            ),
            (
                AugmentSettings {
                    crop_area_min: Some(f32::NAN),
                    ..Default::default()
                },
                "crop_area_min",
            ),
            (
                AugmentSettings {
                    translate_const: Some(-1.0),
                    ..Default::default()
                },
                "translate_const",
            ),
            (
                AugmentSettings {
                    cutout_const: Some(f64::INFINITY),
                    ..Default::default()
                },
                "cutout_const",
            ),
        ];
        for (settings, field) in cases {
            let message = settings.validate().unwrap_err().to_string();
            assert!(
                message.contains(&format!("augment settings {field} must be")),
                "{message}"
            );
        }
        let edge = AugmentSettings {
            crop_area_min: Some(1.0),
            translate_const: Some(0.0),
            cutout_const: Some(0.0),
            eval_crop_padding: 0.0,
            ..AugmentSettings::default()
        };
        assert_eq!(edge.out_of_range(), None);
    }

    #[test]
    fn json_fields_default_to_the_official_values() {
        let partial: AugmentSettings =
            serde_json::from_str(r#"{"translate_const": 12.5}"#).unwrap();
        assert_eq!(
            partial,
            AugmentSettings {
                translate_const: Some(12.5),
                ..Default::default()
            }
        );
        let err = serde_json::from_str::<AugmentSettings>(r#"{"crop_area": 0.3}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `crop_area`"),
            "{err}"
        );
    }
}
