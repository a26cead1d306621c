//! Normalisation of the u8 images to the model's f32 input and mixup/CutMix of the normalised
//! batch, as the host's `Normalization` and `data::mix::mix_batch` compute them.

use super::geometry::inside_boxes;
use super::{leading, one_hot};
use crate::data::Normalization;
use crate::hlo::{
    error::Result, ArrayShape, Builder, DotDimensionNumbers, ElementType, HloError, Literal, Value,
};

/// `(v - mean[c]) / std[c]` in f32 for u8 images `[B, H, W, 3]`, the host's formula and order.
pub fn normalise(b: &mut Builder, images: Value, normalization: &Normalization) -> Result<Value> {
    let values = b.convert(images, ElementType::F32)?;
    normalised(b, values, normalization)
}

/// [`normalise`] of f32 values.
fn normalised(b: &mut Builder, values: Value, normalization: &Normalization) -> Result<Value> {
    let dims = b.array_shape("normalise", values)?.dims().to_vec();
    let per_channel = |b: &mut Builder, values: [f32; 3]| -> Result<Value> {
        let literal =
            Literal::from_vec(&[3], &values).map_err(|m| HloError::new("normalise", &[], m))?;
        let v = b.constant(literal)?;
        b.broadcast_in_dim(v, &dims, &[3])
    };
    let mean = per_channel(b, normalization.mean)?;
    let std = per_channel(b, normalization.std)?;
    let centred = b.sub(values, mean)?;
    b.div(centred, std)
}

/// Each example's mixing draws, for a batch of `B`: `partner` s32 `[B]` (an index into the same
/// batch), `weight` f32 `[B]` and `paste` s32 `[B, 4]` (`[x0, x1, y0, y1]`, empty when
/// `x0 >= x1` or `y0 >= y1`). Mixup examples have an empty box, CutMix ones weight 1.
#[derive(Clone, Copy, Debug)]
pub struct MixArrays {
    pub partner: Value,
    pub weight: Value,
    pub paste: Value,
}

impl MixArrays {
    /// The arrays in their order as step inputs: the order of the fields.
    pub fn values(&self) -> [Value; 3] {
        [self.partner, self.weight, self.paste]
    }

    /// The arrays from [`Self::values`]' order.
    pub fn from_values([partner, weight, paste]: [Value; 3]) -> Self {
        MixArrays {
            partner,
            weight,
            paste,
        }
    }

    /// Each array with `f` applied (e.g. the slice of one step of stacked arrays).
    pub fn try_map(&self, mut f: impl FnMut(Value) -> Result<Value>) -> Result<Self> {
        Ok(MixArrays {
            partner: f(self.partner)?,
            weight: f(self.weight)?,
            paste: f(self.paste)?,
        })
    }

    /// The shapes of the arrays, in [`Self::values`]' order, for a batch of `batch`.
    pub fn shapes(batch: i64) -> [ArrayShape; 3] {
        [
            ArrayShape::new(ElementType::S32, &[batch]),
            ArrayShape::new(ElementType::F32, &[batch]),
            ArrayShape::new(ElementType::S32, &[batch, 4]),
        ]
    }
}

/// u8 images `[B, H, W, 3]` normalised ([`normalise`]) and mixed: example k becomes its
/// partner's pixels inside its paste box and `own * w + partner * (1 - w)` elsewhere, both read
/// from the unmixed batch, as `mix_batch` computes on the host's normalised images.
///
/// The partners' images are a matrix product of the batch with the one-hot partner matrix,
/// taken on the u8 values (exact in any precision a matrix unit uses) and normalised after:
/// a gather of whole images along the batch costs a TPU more than the rest of the step.
pub fn mix(
    b: &mut Builder,
    images: Value,
    normalization: &Normalization,
    arrays: &MixArrays,
) -> Result<Value> {
    b.scoped("mix", |b| {
        let dims = b.array_shape("mix", images)?.dims().to_vec();
        let n = dims[0];
        let values = b.convert(images, ElementType::F32)?;
        let picks = one_hot(b, arrays.partner, n, ElementType::F32)?;
        let along_batch = DotDimensionNumbers {
            lhs_contracting: vec![1],
            rhs_contracting: vec![0],
            ..Default::default()
        };
        let partner = b.dot_general(picks, values, &along_batch)?;
        let own = normalised(b, values, normalization)?;
        let partner = normalised(b, partner, normalization)?;
        let own_weight = leading(b, arrays.weight, &dims)?;
        let one = b.full(&ArrayShape::new(ElementType::F32, &dims), 1.0)?;
        let partner_weight = b.sub(one, own_weight)?;
        let own = b.mul(own, own_weight)?;
        let other = b.mul(partner, partner_weight)?;
        let blended = b.add(own, other)?;
        let pasted = inside_boxes(b, &dims, arrays.paste)?;
        b.select(pasted, partner, blended)
    })
}
