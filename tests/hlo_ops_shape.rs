//! Data-movement ops compiled on the official CPU plugin and checked exactly against ndarray
//! references: broadcast, reshape, transpose, slice, dynamic-slice, dynamic-update-slice, pad,
//! concatenate, reverse and gather.

mod common;

use common::{
    assert_exact, compile, execute, lit, module, random, random_f32, run, run1, shapes_of,
};
use effnetv2::hlo::{GatherDimensionNumbers, Literal, PadDim};
use ndarray::{concatenate, ArrayD, Axis, IxDyn, Slice};

/// XLA's broadcast: result element `out` reads operand element `[out[mapping[0]], ...]`.
fn broadcast_ref<T: Copy>(x: &ArrayD<T>, dims: &[usize], mapping: &[usize]) -> ArrayD<T> {
    ArrayD::from_shape_fn(IxDyn(dims), |out| {
        let index: Vec<usize> = mapping.iter().map(|&m| out[m]).collect();
        x[IxDyn(&index)]
    })
}

#[test]
fn broadcast_maps_operand_dimensions_into_the_result() {
    let v = random(&[3], -9i32, 9, 1);
    let m2 = random(&[2, 3], -9i32, 9, 2);
    let args = [lit(&v), lit(&m2), Literal::scalar(7i32)];
    let m = module("broadcast", &shapes_of(&args), |b, p| {
        let values = [
            b.broadcast_in_dim(p[0], &[2, 3], &[1])?,
            b.broadcast_in_dim(p[0], &[3, 2], &[0])?,
            b.broadcast_in_dim(p[1], &[2, 4, 3], &[0, 2])?,
            b.broadcast_in_dim(p[2], &[2, 2], &[])?,
            b.broadcast(p[1], &[2])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact("rows", &out[0], &broadcast_ref(&v, &[2, 3], &[1]));
    assert_exact("columns", &out[1], &broadcast_ref(&v, &[3, 2], &[0]));
    assert_exact("middle", &out[2], &broadcast_ref(&m2, &[2, 4, 3], &[0, 2]));
    assert_exact("scalar", &out[3], &ArrayD::from_elem(IxDyn(&[2, 2]), 7));
    assert_exact("leading", &out[4], &broadcast_ref(&m2, &[2, 2, 3], &[1, 2]));
}

#[test]
fn reshape_keeps_row_major_order_and_transpose_permutes() {
    let x = random_f32(&[2, 3, 4], 3);
    let m = module("reshape_transpose", &shapes_of(&[lit(&x)]), |b, p| {
        let flat = b.reshape(p[0], &[24])?;
        let values = [
            b.reshape(p[0], &[6, 4])?,
            b.reshape(flat, &[4, 1, 6])?,
            b.transpose(p[0], &[2, 0, 1])?,
            b.transpose(p[0], &[1, 0, 2])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &[lit(&x)]);
    let row_major: Vec<f32> = x.iter().copied().collect();
    let reshaped = |dims: &[usize]| ArrayD::from_shape_vec(IxDyn(dims), row_major.clone()).unwrap();
    assert_exact("reshape [6,4]", &out[0], &reshaped(&[6, 4]));
    assert_exact("reshape [4,1,6]", &out[1], &reshaped(&[4, 1, 6]));
    assert_exact(
        "transpose [2,0,1]",
        &out[2],
        &x.clone().permuted_axes(IxDyn(&[2, 0, 1])),
    );
    assert_exact(
        "transpose [1,0,2]",
        &out[3],
        &x.clone().permuted_axes(IxDyn(&[1, 0, 2])),
    );
}

#[test]
fn slice_with_strides() {
    let x = random(&[5, 7], -99i32, 99, 4);
    let m = module("slice", &shapes_of(&[lit(&x)]), |b, p| {
        let values = [
            b.slice(p[0], &[1, 0], &[4, 7], &[1, 1])?,
            b.slice(p[0], &[0, 1], &[5, 7], &[2, 3])?,
            b.slice(p[0], &[2, 3], &[2, 5], &[1, 1])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &[lit(&x)]);
    let sliced = |ranges: [(isize, isize, isize); 2]| {
        x.slice_each_axis(|ax| {
            let (start, end, step) = ranges[ax.axis.index()];
            Slice::new(start, Some(end), step)
        })
        .to_owned()
    };
    assert_exact("rows 1..4", &out[0], &sliced([(1, 4, 1), (0, 7, 1)]));
    assert_exact("strided", &out[1], &sliced([(0, 5, 2), (1, 7, 3)]));
    assert_exact("empty", &out[2], &sliced([(2, 2, 1), (3, 5, 1)]));
}

/// XLA clamps dynamic start indices so that the slice stays inside the operand.
fn clamp_start(start: i32, size: usize, dim: usize) -> usize {
    start.clamp(0, (dim - size) as i32) as usize
}

#[test]
fn dynamic_slice_clamps_start_indices_into_range() {
    let x = random(&[4, 6], -99i32, 99, 5);
    let args = [lit(&x), Literal::scalar(0i32), Literal::scalar(0i32)];
    let m = module("dynamic_slice", &shapes_of(&args), |b, p| {
        b.dynamic_slice(p[0], &[p[1], p[2]], &[2, 3])
    });
    let exe = compile(&m);
    for (row, col) in [(1, 2), (0, 0), (3, 5), (-2, 1), (2, 100)] {
        let got = execute(&exe, &[lit(&x), Literal::scalar(row), Literal::scalar(col)]);
        let (r, c) = (clamp_start(row, 2, 4), clamp_start(col, 3, 6));
        let expected = x.slice(ndarray::s![r..r + 2, c..c + 3]).to_owned();
        assert_exact(&format!("start ({row}, {col})"), &got[0], &expected);
    }
}

#[test]
fn dynamic_slice_takes_s64_indices() {
    let x = random_f32(&[5], 6);
    let args = [lit(&x), Literal::scalar(3i64)];
    let m = module("dynamic_slice_s64", &shapes_of(&args), |b, p| {
        b.dynamic_slice(p[0], &[p[1]], &[2])
    });
    assert_exact(
        "s64 start",
        &run1(&m, &args),
        &x.slice(ndarray::s![3..5]).to_owned(),
    );
}

#[test]
fn dynamic_update_slice_writes_at_clamped_starts() {
    let x = random(&[4, 5], -99i32, 99, 7);
    let update = random(&[2, 3], 100i32, 200, 8);
    let args = [
        lit(&x),
        lit(&update),
        Literal::scalar(0i32),
        Literal::scalar(0i32),
    ];
    let m = module("dynamic_update_slice", &shapes_of(&args), |b, p| {
        b.dynamic_update_slice(p[0], p[1], &[p[2], p[3]])
    });
    let exe = compile(&m);
    for (row, col) in [(1, 1), (0, 0), (2, 2), (9, -4)] {
        let got = execute(
            &exe,
            &[
                lit(&x),
                lit(&update),
                Literal::scalar(row),
                Literal::scalar(col),
            ],
        );
        let (r, c) = (clamp_start(row, 2, 4), clamp_start(col, 3, 5));
        let mut expected = x.clone();
        expected
            .slice_mut(ndarray::s![r..r + 2, c..c + 3])
            .assign(&update);
        assert_exact(&format!("start ({row}, {col})"), &got[0], &expected);
    }
}

/// XLA's pad: interior padding first, then edge padding (negative edges crop).
fn pad_ref<T: Copy>(x: &ArrayD<T>, value: T, config: &[PadDim]) -> ArrayD<T> {
    let dims: Vec<usize> = x
        .shape()
        .iter()
        .zip(config)
        .map(|(&n, p)| (n as i64 + (n as i64 - 1).max(0) * p.interior + p.low + p.high) as usize)
        .collect();
    ArrayD::from_shape_fn(IxDyn(&dims), |out| {
        let mut source = Vec::with_capacity(dims.len());
        for (d, p) in config.iter().enumerate() {
            let position = out[d] as i64 - p.low;
            let step = p.interior + 1;
            if position < 0 || position % step != 0 || position / step >= x.shape()[d] as i64 {
                return value;
            }
            source.push((position / step) as usize);
        }
        x[IxDyn(&source)]
    })
}

#[test]
fn pad_with_edges_interior_and_negative_cropping() {
    let x = random(&[3, 4], 1i32, 99, 9);
    let cases: [[PadDim; 2]; 4] = [
        [
            PadDim {
                low: 1,
                high: 2,
                interior: 0,
            },
            PadDim {
                low: 0,
                high: 1,
                interior: 0,
            },
        ],
        [
            PadDim {
                low: 0,
                high: 0,
                interior: 2,
            },
            PadDim {
                low: 1,
                high: 1,
                interior: 1,
            },
        ],
        [
            PadDim {
                low: -1,
                high: 2,
                interior: 1,
            },
            PadDim {
                low: 2,
                high: -3,
                interior: 0,
            },
        ],
        [
            PadDim {
                low: -2,
                high: -2,
                interior: 2,
            },
            PadDim {
                low: -1,
                high: 0,
                interior: 1,
            },
        ],
    ];
    let args = [lit(&x), Literal::scalar(-1i32)];
    let m = module("pad", &shapes_of(&args), |b, p| {
        let values = cases
            .iter()
            .map(|c| b.pad(p[0], p[1], c))
            .collect::<Result<Vec<_>, _>>()?;
        b.tuple(&values)
    });
    let out = run(&m, &args);
    for (config, got) in cases.iter().zip(&out) {
        assert_exact(&format!("{config:?}"), got, &pad_ref(&x, -1, config));
    }
}

#[test]
fn pad_of_floats_in_three_dimensions() {
    let x = random_f32(&[2, 3, 2], 10);
    let config = [
        PadDim {
            low: 1,
            high: 0,
            interior: 1,
        },
        PadDim {
            low: -1,
            high: 1,
            interior: 0,
        },
        PadDim {
            low: 0,
            high: 0,
            interior: 0,
        },
    ];
    let args = [lit(&x), Literal::scalar(0.5f32)];
    let m = module("pad3", &shapes_of(&args), |b, p| b.pad(p[0], p[1], &config));
    assert_exact("rank 3", &run1(&m, &args), &pad_ref(&x, 0.5, &config));
}

#[test]
fn concatenate_along_each_dimension() {
    let a = random(&[2, 3], -9i32, 9, 11);
    let b2 = random(&[2, 1], -9i32, 9, 12);
    let c = random(&[2, 4], -9i32, 9, 13);
    let d = random(&[1, 3], -9i32, 9, 14);
    let args = [lit(&a), lit(&b2), lit(&c), lit(&d)];
    let m = module("concatenate", &shapes_of(&args), |b, p| {
        let values = [
            b.concatenate(&[p[0], p[1], p[2]], 1)?,
            b.concatenate(&[p[0], p[3], p[0]], 0)?,
            b.concatenate(&[p[3]], 0)?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact(
        "columns",
        &out[0],
        &concatenate(Axis(1), &[a.view(), b2.view(), c.view()]).unwrap(),
    );
    assert_exact(
        "rows",
        &out[1],
        &concatenate(Axis(0), &[a.view(), d.view(), a.view()]).unwrap(),
    );
    assert_exact("single", &out[2], &d);
}

#[test]
fn reverse_flips_the_given_dimensions() {
    let x = random(&[2, 3, 4], -99i32, 99, 15);
    let m = module("reverse", &shapes_of(&[lit(&x)]), |b, p| {
        let values = [
            b.reverse(p[0], &[0, 2])?,
            b.reverse(p[0], &[1])?,
            b.reverse(p[0], &[])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &[lit(&x)]);
    let reversed = |dims: &[usize]| {
        x.slice_each_axis(|ax| {
            if dims.contains(&ax.axis.index()) {
                Slice::new(0, None, -1)
            } else {
                Slice::from(..)
            }
        })
        .to_owned()
    };
    assert_exact("dims 0 and 2", &out[0], &reversed(&[0, 2]));
    assert_exact("dim 1", &out[1], &reversed(&[1]));
    assert_exact("none", &out[2], &x);
}

/// XLA's gather written out per result element: the batch position selects an index vector,
/// whose entries (clamped so that the slice fits) start the slice in the `start_index_map`
/// dimensions; the offset position walks the slice's non-collapsed dimensions.
fn gather_ref<T: Copy>(
    x: &ArrayD<T>,
    indices: &ArrayD<i32>,
    dn: &GatherDimensionNumbers,
    slice_sizes: &[usize],
    out_dims: &[usize],
) -> ArrayD<T> {
    let ivd = dn.index_vector_dim as usize;
    let offset_dims: Vec<usize> = dn.offset_dims.iter().map(|&d| d as usize).collect();
    let kept: Vec<usize> = (0..x.ndim())
        .filter(|d| !dn.collapsed_slice_dims.contains(&(*d as i64)))
        .collect();
    ArrayD::from_shape_fn(IxDyn(out_dims), |out| {
        let batch: Vec<usize> = (0..out_dims.len())
            .filter(|d| !offset_dims.contains(d))
            .map(|d| out[d])
            .collect();
        let mut start = vec![0usize; x.ndim()];
        for (k, &operand_dim) in dn.start_index_map.iter().enumerate() {
            let mut at = batch.clone();
            if ivd <= at.len() && indices.ndim() > batch.len() {
                at.insert(ivd, k);
            }
            let d = operand_dim as usize;
            let most = (x.shape()[d] - slice_sizes[d]) as i32;
            start[d] = indices[IxDyn(&at)].clamp(0, most) as usize;
        }
        let mut index = start;
        for (&operand_dim, &out_dim) in kept.iter().zip(&offset_dims) {
            index[operand_dim] += out[out_dim];
        }
        x[IxDyn(&index)]
    })
}

#[test]
fn gather_reads_clamped_slices_at_index_vectors() {
    let table = random(&[20], 0u8, 255, 16);
    let lookups = random(&[2, 3, 4], 0i32, 19, 17);
    let rows = random_f32(&[6, 3], 18);
    let row_ids = ndarray::arr2(&[[0, 5], [-3, 9]]).into_dyn();
    let images = random_f32(&[4, 2, 3, 3], 19);
    let partners = ndarray::arr1(&[3, 2, 1, 0]).into_dyn();
    let grid = random_f32(&[5, 7], 20);
    let corners = ndarray::arr2(&[[0, 6, 2], [4, 1, -1]]).into_dyn();
    let args = [
        lit(&table),
        lit(&lookups),
        lit(&rows),
        lit(&row_ids),
        lit(&images),
        lit(&partners),
        lit(&grid),
        lit(&corners),
    ];
    let table_dn = GatherDimensionNumbers {
        offset_dims: vec![],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 3,
    };
    let rows_dn = GatherDimensionNumbers {
        offset_dims: vec![2],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 2,
    };
    let batch_dn = GatherDimensionNumbers {
        offset_dims: vec![1, 2, 3],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 1,
    };
    // Two-element index vectors along dimension 0, mapped to the operand's dimensions in
    // reverse order, with the slice's two dimensions around the batch dimension.
    let window_dn = GatherDimensionNumbers {
        offset_dims: vec![0, 2],
        collapsed_slice_dims: vec![],
        start_index_map: vec![1, 0],
        index_vector_dim: 0,
    };
    let m = module("gather", &shapes_of(&args), |b, p| {
        let values = [
            b.gather(p[0], p[1], &table_dn, &[1])?,
            b.gather(p[2], p[3], &rows_dn, &[1, 3])?,
            b.gather(p[4], p[5], &batch_dn, &[1, 2, 3, 3])?,
            b.gather(p[6], p[7], &window_dn, &[2, 3])?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_exact(
        "table",
        &out[0],
        &gather_ref(&table, &lookups, &table_dn, &[1], &[2, 3, 4]),
    );
    assert_exact(
        "rows",
        &out[1],
        &gather_ref(&rows, &row_ids, &rows_dn, &[1, 3], &[2, 2, 3]),
    );
    let swapped = gather_ref(&images, &partners, &batch_dn, &[1, 2, 3, 3], &[4, 2, 3, 3]);
    assert_eq!(
        swapped.index_axis(Axis(0), 0),
        images.index_axis(Axis(0), 3)
    );
    assert_exact("batch", &out[2], &swapped);
    assert_exact(
        "windows",
        &out[3],
        &gather_ref(&grid, &corners, &window_dn, &[2, 3], &[2, 3, 3]),
    );
}
