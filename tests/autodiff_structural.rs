//! Gradient rules of the data-movement ops against central finite differences (f64, CPU plugin):
//! broadcast, reshape, transpose, strided slice, dynamic slice and update (including clamped
//! start indices), pad (positive, negative and interior), concatenate and reverse.

mod autodiff_fd;
mod common;

use autodiff_fd::{check, Input};
use effnetv2::hlo::{Builder, HloError, PadDim, Value};

#[test]
fn broadcast() {
    check("broadcast_vector", &[Input::random(&[3], 1)], |b, p| {
        b.broadcast_in_dim(p[0], &[5, 3, 2], &[1])
    });
    check("broadcast_matrix", &[Input::random(&[3, 5], 2)], |b, p| {
        b.broadcast_in_dim(p[0], &[3, 2, 5], &[0, 2])
    });
    check("broadcast_scalar", &[Input::random(&[], 3)], |b, p| {
        b.broadcast_in_dim(p[0], &[3, 5], &[])
    });
    check(
        "broadcast_identity",
        &[Input::random(&[3, 5], 4)],
        |b, p| b.broadcast_in_dim(p[0], &[3, 5], &[0, 1]),
    );
}

#[test]
fn reshape_and_transpose() {
    check("reshape", &[Input::random(&[3, 5], 5)], |b, p| {
        b.reshape(p[0], &[5, 3])
    });
    check("reshape_flat", &[Input::random(&[3, 5, 1], 6)], |b, p| {
        b.reshape(p[0], &[15])
    });
    check("transpose", &[Input::random(&[3, 5, 2], 7)], |b, p| {
        b.transpose(p[0], &[2, 0, 1])
    });
}

#[test]
fn strided_slices() {
    check("slice_strided", &[Input::random(&[7, 9], 8)], |b, p| {
        b.slice(p[0], &[1, 2], &[6, 9], &[2, 3])
    });
    check("slice_unit", &[Input::random(&[7, 9], 9)], |b, p| {
        b.slice(p[0], &[3, 0], &[4, 9], &[1, 1])
    });
}

fn s32_starts(b: &mut Builder, starts: &[i32]) -> Result<Vec<Value>, HloError> {
    starts.iter().map(|&s| b.scalar(s)).collect()
}

#[test]
fn dynamic_slices() {
    check("dynamic_slice", &[Input::random(&[7, 5], 10)], |b, p| {
        let starts = s32_starts(b, &[2, 1])?;
        b.dynamic_slice(p[0], &starts, &[3, 3])
    });
    // Start 6 of a 3-wide slice of 7 elements is clamped to 4 by XLA, in the forward op and in
    // the update that transposes it alike.
    check(
        "dynamic_slice_clamped",
        &[Input::random(&[7, 5], 11)],
        |b, p| {
            let starts = s32_starts(b, &[6, -2])?;
            b.dynamic_slice(p[0], &starts, &[3, 3])
        },
    );
    check(
        "dynamic_update_slice",
        &[Input::random(&[7, 5], 12), Input::random(&[3, 2], 13)],
        |b, p| {
            let starts = s32_starts(b, &[2, 3])?;
            let updated = b.dynamic_update_slice(p[0], p[1], &starts)?;
            // Squared, so the overwritten operand elements and the update interact with the result.
            b.mul(updated, updated)
        },
    );
}

#[test]
fn pads() {
    let operand = Input::random(&[5, 3], 14);
    let value = Input::random(&[], 15);
    let cases: [(&str, [PadDim; 2]); 4] = [
        (
            "pad_edges",
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
        ),
        (
            "pad_interior",
            [
                PadDim {
                    low: 2,
                    high: 1,
                    interior: 2,
                },
                PadDim {
                    low: 1,
                    high: 0,
                    interior: 1,
                },
            ],
        ),
        (
            "pad_negative",
            [
                PadDim {
                    low: -1,
                    high: -2,
                    interior: 0,
                },
                PadDim {
                    low: 1,
                    high: -1,
                    interior: 0,
                },
            ],
        ),
        (
            "pad_negative_interior",
            [
                PadDim {
                    low: -2,
                    high: 1,
                    interior: 1,
                },
                PadDim {
                    low: -1,
                    high: -2,
                    interior: 2,
                },
            ],
        ),
    ];
    for (name, config) in cases {
        check(name, &[operand.clone(), value.clone()], |b, p| {
            b.pad(p[0], p[1], &config)
        });
    }
}

#[test]
fn concatenate_and_reverse() {
    let inputs = [
        Input::random(&[3, 2], 16),
        Input::random(&[3, 5], 17),
        Input::random(&[3, 1], 18),
    ];
    check("concatenate", &inputs, |b, p| b.concatenate(p, 1));
    check("reverse", &[Input::random(&[3, 5, 2], 19)], |b, p| {
        b.reverse(p[0], &[0, 2])
    });
}
