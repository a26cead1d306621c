//! The per-model constants of the training augmentation: size-dependent pixel constants and the
//! RandAugment operation list.
//!
//! The official recipe (spec 6) uses absolute values tuned for 224–480 px ImageNet images: crops
//! down to 5 % of the image, RandAugment translations of up to 100 px and cutout squares of
//! half-side up to 40 px. On small images (28 px Fashion-MNIST) these erase the whole picture, so a
//! model spec may scale them, and drop RandAugment operations that make no sense for its data
//! (inverting or solarising greyscale clothing on black); the defaults are the official values.

use serde::{Deserialize, Serialize};

use super::crop::{AREA_RANGE, CROP_PADDING};
use super::randaugment::{OpSet, CUTOUT_CONST, TRANSLATE_CONST};
use crate::data::error::{DataError, Result};

/// Constants of the random crop and of RandAugment (its level-to-argument table and operations).
///
/// Deserialises from `{"crop_area_min": .., "translate_const": .., "cutout_const": ..,
/// "eval_crop_padding": .., "randaugment_ops": ["Rotate", ..]}`; each field may be left out and
/// then takes its official value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentSettings {
    /// Smallest random-crop area as a fraction of the image area, in (0, 1]; official
    /// [`AREA_RANGE`]`.0`.
    pub crop_area_min: f32,
    /// Translation in pixels at magnitude [`MAX_LEVEL`](super::randaugment::MAX_LEVEL); official
    /// [`TRANSLATE_CONST`].
    pub translate_const: f64,
    /// Half side of the cutout square in pixels at magnitude
    /// [`MAX_LEVEL`](super::randaugment::MAX_LEVEL); official [`CUTOUT_CONST`].
    pub cutout_const: f64,
    /// Evaluation crops below 320 px keep `size / (size + eval_crop_padding)` of the short side;
    /// official [`CROP_PADDING`] (224 of 256).
    pub eval_crop_padding: f64,
    /// The operations RandAugment picks from; official: all 16.
    pub randaugment_ops: OpSet,
}

impl Default for AugmentSettings {
    /// The official constants.
    fn default() -> Self {
        AugmentSettings {
            crop_area_min: AREA_RANGE.0,
            translate_const: TRANSLATE_CONST,
            cutout_const: CUTOUT_CONST,
            eval_crop_padding: CROP_PADDING as f64,
            randaugment_ops: OpSet::ALL,
        }
    }
}

impl AugmentSettings {
    /// The first field out of range, with what is wrong with it, or `None` when all are valid.
    /// Field names are those of the JSON form, so callers can point at the spec entry.
    pub fn out_of_range(&self) -> Option<(&'static str, String)> {
        let area = self.crop_area_min;
        if !(area > 0.0 && area <= AREA_RANGE.1) {
            return Some((
                "crop_area_min",
                format!("must be in (0, {}], got {area}", AREA_RANGE.1),
            ));
        }
        for (field, value) in [
            ("translate_const", self.translate_const),
            ("cutout_const", self.cutout_const),
            ("eval_crop_padding", self.eval_crop_padding),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Some((field, format!("must be a finite number >= 0, got {value}")));
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
    fn defaults_are_the_official_constants() {
        let official = AugmentSettings::default();
        assert_eq!(
            (
                official.crop_area_min,
                official.translate_const,
                official.cutout_const
            ),
            (0.05, 100.0, 40.0)
        );
        assert!(official.validate().is_ok());
    }

    #[test]
    fn out_of_range_values_are_rejected_naming_the_field() {
        let cases = [
            (
                AugmentSettings {
                    crop_area_min: 0.0,
                    ..Default::default()
                },
                "crop_area_min",
            ),
            (
                AugmentSettings {
                    crop_area_min: 1.5,
                    ..Default::default()
                },
                "crop_area_min",
            ),
            (
                AugmentSettings {
                    crop_area_min: f32::NAN,
                    ..Default::default()
                },
                "crop_area_min",
            ),
            (
                AugmentSettings {
                    translate_const: -1.0,
                    ..Default::default()
                },
                "translate_const",
            ),
            (
                AugmentSettings {
                    cutout_const: f64::INFINITY,
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
            crop_area_min: 1.0,
            translate_const: 0.0,
            cutout_const: 0.0,
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
                translate_const: 12.5,
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
