//! Stages 3 and 4: `geometric::projective` (nearest sampling, [`FILL`] outside) and the cutout
//! box.

use super::{column, leading, one_hot, within};
use crate::data::transform::randaugment::geometric::FILL;
use crate::hlo::ComparisonDirection::{Eq, Ge, Gt, Le};
use crate::hlo::{error::Result, ArrayShape, Builder, DotDimensionNumbers, ElementType, Value};

/// Each example's affine transform `warp` (f32 `[B, 8]`, `geometric::Transform`, whose
/// projective terms `c0, c1` must be 0, as every RandAugment operation's are): output pixel
/// (x, y) takes the input pixel nearest to `(a0 x + a1 y + a2, b0 x + b1 y + b2)` (rounded half
/// away from zero, the host's f32 formulas in its order, exact because the host puts the
/// coefficients on a grid: `geometric::on_grid`), or [`FILL`] where that is outside the image.
///
/// The sampling is two passes of one-hot matrix products, because a TPU pays for a gather per
/// index (a whole memory tile for each of the batch's pixels), while a product whose one-hot
/// operand it builds inside costs little more than reading the image. The first pass moves
/// pixels along columns into an intermediate row, the second along that row: output pixel
/// (x, y) reads the intermediate row y at its source column, which must hold input pixel
/// (source column, source row). Two output pixels of a row can share a source column but not a
/// source row (a rotation's neighbours), so each intermediate row has two slots per column,
/// for the first and the second pixel of the row that reads it ([`Readers`]). That is exact
/// whenever no three pixels of a row read one column, i.e. whenever the source column moves by
/// at least 1/2 per output column. Shears and translations move it by 1; a rotation by
/// `|cos|`, so for square images (as training crops are) an example whose source row moves
/// faster (`|b0| > |a0|`, rotations past 45 degrees) reads the transposed image instead
/// ([`Formulas`]), which keeps the step at least `1/sqrt(2)`. On other images a rotation past
/// 60 degrees would leave a third reader of a column black (no RandAugment magnitude does so on
/// the square crops training uses).
pub(super) fn warp(b: &mut Builder, images: Value, warp: Value) -> Result<Value> {
    let dims = b.array_shape("warp", images)?.dims().to_vec();
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    let formulas = Formulas::of(b, warp, h == w)?;
    let images = match formulas.transposed {
        Some(transposed) => {
            let transposed = b.broadcast_in_dim(transposed, &dims, &[0])?;
            let other = b.transpose(images, &[0, 2, 1, 3])?;
            b.select(transposed, other, images)?
        }
        None => images,
    };
    let readers = Readers::of(b, &formulas, [n, h, w])?;
    let intermediate = along_columns(b, images, readers.row)?;
    // Pass 2: per example and row, the slots' one-hot reader codes `[B, H, 2W, W]` contracted
    // with the intermediate `[B, H, 2W, 3]` over the slots; pixels whose source is outside the
    // image (read by no slot) then get the fill.
    let codes = one_hot(b, readers.pixel, w, ElementType::Bf16)?;
    let along_rows = DotDimensionNumbers {
        lhs_batch: vec![0, 1],
        rhs_batch: vec![0, 1],
        lhs_contracting: vec![2],
        rhs_contracting: vec![2],
    };
    let sampled = b.dot_general(codes, intermediate, &along_rows)?;
    let colours = b.convert(sampled, ElementType::U8)?;
    let read = sources_inside(b, &formulas, [n, h, w])?;
    let read = b.broadcast_in_dim(read, &dims, &[0, 1, 2])?;
    let fill = b.full(&ArrayShape::new(ElementType::U8, &dims), FILL as f64)?;
    b.select(read, colours, fill)
}

/// Where output pixel (x, y) has its source inside the image: pred `[B, H, W]`.
fn sources_inside(b: &mut Builder, formulas: &Formulas, plane: [i64; 3]) -> Result<Value> {
    let [_, h, w] = plane;
    let (c, r) = formulas.spread(b, &plane)?;
    let x = b.iota_of(ElementType::F32, &plane, 2)?;
    let y = b.iota_of(ElementType::F32, &plane, 1)?;
    let column = host_formula(b, c, x, y)?;
    let row = host_formula(b, r, x, y)?;
    let column = inside(b, column, w)?;
    let row = inside(b, row, h)?;
    b.and(column, row)
}

/// Each example's two coordinate formulas (`[B]` coefficient triplets `p, q, r` of
/// `(p x + q y) + r`): `column`, the one whose result indexes the columns of the image the
/// passes read, and `row`. That image is the input, or on square images, for the examples in
/// `transposed`, the input transposed, whose columns are the input's rows.
struct Formulas {
    column: [Value; 3],
    row: [Value; 3],
    transposed: Option<Value>,
}

impl Formulas {
    /// The column and the row formulas' coefficients broadcast to `dims` (`[B, ...]`).
    fn spread(&self, b: &mut Builder, dims: &[i64]) -> Result<([Value; 3], [Value; 3])> {
        let mut spread = |triplet: [Value; 3]| -> Result<[Value; 3]> {
            let [p, q, r] = triplet;
            Ok([
                leading(b, p, dims)?,
                leading(b, q, dims)?,
                leading(b, r, dims)?,
            ])
        };
        Ok((spread(self.column)?, spread(self.row)?))
    }

    /// The formulas of each example's transform `warp` (f32 `[B, 8]`); on `square` images the
    /// examples whose source row moves faster along an output row than their source column
    /// read the transposed image.
    fn of(b: &mut Builder, warp: Value, square: bool) -> Result<Formulas> {
        let mut t = Vec::with_capacity(6);
        for i in 0..6 {
            t.push(column(b, warp, i)?);
        }
        let (x, y) = ([t[0], t[1], t[2]], [t[3], t[4], t[5]]);
        if !square {
            return Ok(Formulas {
                column: x,
                row: y,
                transposed: None,
            });
        }
        let along_x = b.abs(t[0])?;
        let along_y = b.abs(t[3])?;
        let transposed = b.compare(Gt, along_y, along_x)?;
        let mut pick = |a: [Value; 3], c: [Value; 3]| -> Result<[Value; 3]> {
            let [a0, a1, a2] = a;
            let [c0, c1, c2] = c;
            Ok([
                b.select(transposed, c0, a0)?,
                b.select(transposed, c1, a1)?,
                b.select(transposed, c2, a2)?,
            ])
        };
        Ok(Formulas {
            column: pick(x, y)?,
            row: pick(y, x)?,
            transposed: Some(transposed),
        })
    }
}

/// Who reads each slot of the intermediate rows: for slot `column + W * k` of row y (`k` 0 for
/// the first, 1 for the second reader), the output pixel x of row y that is the row's `k`-th
/// pixel with that source column and a source inside the image, and its source row: s32
/// `[B, H, 2W]` each, -1 for none.
///
/// Computed per slot from the formulas alone, so that both passes take their one-hot codes
/// from one computation: the readers of a column lie within `1 / |p|` of where the column
/// formula's inverse puts it (`p` at least 1/2, [`warp`]), so four candidates around that
/// point, each through the host's formulas, find them exactly.
struct Readers {
    pixel: Value,
    row: Value,
}

impl Readers {
    fn of(b: &mut Builder, formulas: &Formulas, [n, h, w]: [i64; 3]) -> Result<Readers> {
        const CANDIDATES: i64 = 4;
        let dims = [n, h, 2, w];
        let f32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::F32, &dims), v);
        let s32s = |b: &mut Builder, v: f64| b.full(&ArrayShape::new(ElementType::S32, &dims), v);
        let (c, r) = formulas.spread(b, &dims)?;
        let y = b.iota_of(ElementType::F32, &dims, 1)?;
        let rank = b.iota_of(ElementType::S32, &dims, 2)?;
        let source_column = b.iota_of(ElementType::F32, &dims, 3)?;
        // The first candidate: one before the lowest x whose exact source column rounds to
        // `source_column`, `(column - q y - r) / p - 1 / (2 |p|)` for the column formula.
        let offset = b.mul(c[1], y)?;
        let offset = b.add(offset, c[2])?;
        let centre = b.sub(source_column, offset)?;
        let centre = b.div(centre, c[0])?;
        let reach = b.abs(c[0])?;
        let half = f32s(b, 0.5)?;
        let reach = b.div(half, reach)?;
        let first = b.sub(centre, reach)?;
        let first = b.ceil(first)?;
        let one = f32s(b, 1.0)?;
        let first = b.sub(first, one)?;
        let (mut pixel, mut row) = (s32s(b, -1.0)?, s32s(b, -1.0)?);
        let mut earlier = s32s(b, 0.0)?;
        for j in 0..CANDIDATES {
            let step = f32s(b, j as f64)?;
            let x = b.add(first, step)?;
            let in_row = inside(b, x, w)?;
            let (sx, sy) = (host_formula(b, c, x, y)?, host_formula(b, r, x, y)?);
            let hit = b.compare(Eq, sx, source_column)?;
            let hit = b.and(hit, in_row)?;
            let source_inside = inside(b, sy, h)?;
            let hit = b.and(hit, source_inside)?;
            let ranked = b.compare(Eq, earlier, rank)?;
            let ours = b.and(hit, ranked)?;
            let x = b.convert(x, ElementType::S32)?;
            let sy = b.convert(sy, ElementType::S32)?;
            pixel = b.select(ours, x, pixel)?;
            row = b.select(ours, sy, row)?;
            let counted = b.convert(hit, ElementType::S32)?;
            earlier = b.add(earlier, counted)?;
        }
        let slots = [n, h, 2 * w];
        Ok(Readers {
            pixel: b.reshape(pixel, &slots)?,
            row: b.reshape(row, &slots)?,
        })
    }
}

/// `round_half_away((p x + q y) + r)` in the host's order (`geometric::projective`, whose
/// divisor `k` is exactly 1 for an affine transform).
fn host_formula(b: &mut Builder, [p, q, r]: [Value; 3], x: Value, y: Value) -> Result<Value> {
    let px = b.mul(p, x)?;
    let qy = b.mul(q, y)?;
    let sum = b.add(px, qy)?;
    let sum = b.add(sum, r)?;
    b.round(sum)
}

/// `0 <= v <= size - 1` for f32 `v` (NaN is outside).
fn inside(b: &mut Builder, v: Value, size: i64) -> Result<Value> {
    let dims = b.array_shape("warp", v)?.dims().to_vec();
    let zero = b.full(&ArrayShape::new(ElementType::F32, &dims), 0.0)?;
    let last = b.full(&ArrayShape::new(ElementType::F32, &dims), (size - 1) as f64)?;
    let from_first = b.compare(Ge, v, zero)?;
    let to_last = b.compare(Le, v, last)?;
    b.and(from_first, to_last)
}

/// Pass 1: bf16 `[B, H, 2W, 3]` whose slot `column + W * k` of row y holds input pixel
/// (`column`, `rows[y, slot]`) of `images` (u8 `[B, H, W, 3]`), 0 where `rows` is -1 (whose
/// one-hot code is all zeros): per example and input column, the rows' one-hot codes times that
/// column, exact in bf16. It changes layout as bytes, the cheapest form.
fn along_columns(b: &mut Builder, images: Value, rows: Value) -> Result<Value> {
    let dims = b.array_shape("warp", images)?.dims().to_vec();
    let (n, h, w) = (dims[0], dims[1], dims[2]);
    // Each input column's slot rows: `[B, H, 2, W]` as `[B, W, 2, H]`.
    let rows = b.reshape(rows, &[n, h, 2, w])?;
    let rows = b.transpose(rows, &[0, 3, 2, 1])?;
    let codes = one_hot(b, rows, h, ElementType::Bf16)?;
    let values = b.convert(images, ElementType::Bf16)?;
    let per_column = DotDimensionNumbers {
        lhs_batch: vec![0, 1],
        rhs_batch: vec![0, 2],
        lhs_contracting: vec![4],
        rhs_contracting: vec![1],
    };
    // `[B, W, 2, H, 3]` to `[B, H, 2, W, 3]`, the two slots of a column side by side.
    let moved = b.dot_general(codes, values, &per_column)?;
    let moved = b.convert(moved, ElementType::U8)?;
    let moved = b.transpose(moved, &[0, 3, 2, 1, 4])?;
    let moved = b.reshape(moved, &[n, h, 2 * w, 3])?;
    b.convert(moved, ElementType::Bf16)
}

/// Columns `x0..x1` and rows `y0..y1` of each example's box `cutout` (s32 `[B, 4]` as
/// `[x0, x1, y0, y1]`; empty when `x0 >= x1` or `y0 >= y1`) set to [`FILL`].
pub(super) fn cutout(b: &mut Builder, images: Value, cutout: Value) -> Result<Value> {
    let dims = b.array_shape("cutout", images)?.dims().to_vec();
    let inside = inside_boxes(b, &dims, cutout)?;
    let fill = b.full(&ArrayShape::new(ElementType::U8, &dims), FILL as f64)?;
    b.select(inside, fill, images)
}

/// Where pixel `[e, y, x, c]` of an array of `dims` lies in example `e`'s box (s32 `[B, 4]`,
/// `[x0, x1, y0, y1]`).
pub(super) fn inside_boxes(b: &mut Builder, dims: &[i64], boxes: Value) -> Result<Value> {
    let x = b.iota_of(ElementType::S32, dims, 2)?;
    let y = b.iota_of(ElementType::S32, dims, 1)?;
    let bound = |b: &mut Builder, i| column(b, boxes, i);
    let (x0, x1, y0, y1) = (bound(b, 0)?, bound(b, 1)?, bound(b, 2)?, bound(b, 3)?);
    let in_columns = within(b, x, x0, x1)?;
    let in_rows = within(b, y, y0, y1)?;
    b.and(in_columns, in_rows)
}
