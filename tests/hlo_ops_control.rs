//! Tuples, random bits, control flow and cross-replica reduction compiled on the official CPU
//! plugin: tuple and get-tuple-element, rng-bit-generator, while, conditional and all-reduce (on
//! two CPU devices).

mod common;

use common::{
    assert_exact, compile, computation, execute, lit, module, random, random_f32, run,
    run_replicated, shapes_of, DEVICES,
};
use effnetv2::hlo::{
    ArrayShape, BinaryOp, ComparisonDirection, Computation, ElementType, Literal, Module,
    RandomAlgorithm, Shape,
};
use ndarray::{arr1, ArrayD};
use ElementType::{F32, S32, S64, U32, U64, U8};

#[test]
fn tuple_and_get_tuple_element_select_elements() {
    let x = random_f32(&[2, 3], 1);
    let n = random(&[4], -9i32, 9, 2);
    let args = [lit(&x), lit(&n), Literal::scalar(5u8)];
    let m = module("tuples", &shapes_of(&args), |b, p| {
        let inner = b.tuple(&[p[2], p[0]])?;
        let outer = b.tuple(&[p[0], inner, p[1]])?;
        let from_inner = b.get_tuple_element(outer, 1)?;
        let values = [
            b.get_tuple_element(outer, 2)?,
            b.get_tuple_element(from_inner, 0)?,
            b.get_tuple_element(from_inner, 1)?,
        ];
        b.tuple(&values)
    });
    let out = run(&m, &args);
    assert_eq!(out.len(), 3);
    assert_exact("element 2", &out[0], &n);
    assert_exact("element 1.0", &out[1], &ndarray::arr0(5u8));
    assert_exact("element 1.1", &out[2], &x);
}

/// `(new_state, bits) = rng-bit-generator(state)` with both results as outputs.
fn rng_module(algorithm: RandomAlgorithm, bits: &ArrayShape) -> Module {
    module("rng", &[Shape::array(U64, &[2])], |b, p| {
        let pair = b.rng_bit_generator(algorithm, p[0], bits)?;
        let values = [b.get_tuple_element(pair, 0)?, b.get_tuple_element(pair, 1)?];
        b.tuple(&values)
    })
}

fn key(a: u64, b: u64) -> Literal {
    Literal::from_vec(&[2], &[a, b]).unwrap()
}

/// The fraction of positions where two equally long bit arrays agree.
fn agreement(a: &[u32], b: &[u32]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn rng_bit_generator_is_deterministic_keyed_and_advances_its_state() {
    let shape = ArrayShape::new(U32, &[128, 128]);
    for algorithm in [
        RandomAlgorithm::ThreeFry,
        RandomAlgorithm::Philox,
        RandomAlgorithm::Default,
    ] {
        let exe = compile(&rng_module(algorithm, &shape));
        let name = algorithm.name();
        let first = execute(&exe, &[key(42, 7)]);
        assert_eq!(
            first[0].shape(),
            &ArrayShape::new(U64, &[2]),
            "{name}: state shape"
        );
        assert_eq!(first[1].shape(), &shape, "{name}: bits shape");
        let bits: Vec<u32> = first[1].to_vec().unwrap();

        let again = execute(&exe, &[key(42, 7)]);
        assert_eq!(again[0], first[0], "{name}: same key, same new state");
        assert_eq!(again[1], first[1], "{name}: same key, same bits");

        let other: Vec<u32> = execute(&exe, &[key(43, 7)])[1].to_vec().unwrap();
        assert!(
            agreement(&bits, &other) < 0.01,
            "{name}: another key gives other bits"
        );

        let new_state: Vec<u64> = first[0].to_vec().unwrap();
        assert_ne!(new_state, [42, 7], "{name}: the state advances");
        let next: Vec<u32> = execute(&exe, &[first[0].clone()])[1].to_vec().unwrap();
        assert!(
            agreement(&bits, &next) < 0.01,
            "{name}: the advanced state gives fresh bits"
        );

        check_uniform(name, &bits);
    }
}

/// Every bit position is set in about half the values, and the top bytes fill 256 buckets
/// evenly (chi-square with 255 degrees of freedom: mean 255, standard deviation 22.6).
fn check_uniform(name: &str, bits: &[u32]) {
    let n = bits.len() as f64;
    for position in 0..32 {
        let ones = bits.iter().filter(|&&v| v >> position & 1 == 1).count() as f64 / n;
        // n = 16384: one standard deviation is 0.0039.
        assert!(
            (ones - 0.5).abs() < 0.03,
            "{name}: bit {position} is set in {ones:.4} of the values"
        );
    }
    let mut buckets = [0f64; 256];
    bits.iter()
        .for_each(|&v| buckets[(v >> 24) as usize] += 1.0);
    let expected = n / 256.0;
    let chi_square: f64 = buckets
        .iter()
        .map(|&c| (c - expected).powi(2) / expected)
        .sum();
    assert!(
        chi_square < 400.0,
        "{name}: chi-square of the top byte is {chi_square:.1}"
    );
}

#[test]
fn rng_bit_generator_fills_other_shapes_and_unsigned_types() {
    for (algorithm, shape) in [
        (RandomAlgorithm::ThreeFry, ArrayShape::new(U64, &[3, 5])),
        (RandomAlgorithm::Philox, ArrayShape::new(U8, &[64])),
    ] {
        let out = execute(&compile(&rng_module(algorithm, &shape)), &[key(1, 2)]);
        assert_eq!(out[1].shape(), &shape, "{}", algorithm.name());
        let values = out[1].to_f64_vec();
        // 15 random u64 never collide; 64 random bytes take about 57 distinct values.
        let distinct = values
            .iter()
            .map(|v| v.to_bits())
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert!(
            distinct * 4 >= values.len() * 3,
            "{}: too many repeats in {values:?}",
            algorithm.name()
        );
    }
}

/// `state = (i, n, acc)`; loops while `i <= n` with `acc *= i; i += 1`, so `acc` ends as `n!`.
fn factorial_module() -> Module {
    let state = Shape::Tuple(vec![
        Shape::scalar(S64),
        Shape::scalar(S64),
        Shape::scalar(S64),
    ]);
    let condition = computation("i_le_n", std::slice::from_ref(&state), |b, p| {
        let i = b.get_tuple_element(p[0], 0)?;
        let n = b.get_tuple_element(p[0], 1)?;
        b.compare(ComparisonDirection::Le, i, n)
    });
    let body = computation("multiply_step", &[state], |b, p| {
        let i = b.get_tuple_element(p[0], 0)?;
        let n = b.get_tuple_element(p[0], 1)?;
        let acc = b.get_tuple_element(p[0], 2)?;
        let one = b.scalar(1i64)?;
        let next = b.add(i, one)?;
        let product = b.mul(acc, i)?;
        b.tuple(&[next, n, product])
    });
    module("factorial", &[Shape::scalar(S64)], |b, p| {
        let one = b.scalar(1i64)?;
        let init = b.tuple(&[one, p[0], one])?;
        let done = b.while_loop(&condition, &body, init)?;
        b.get_tuple_element(done, 2)
    })
}

#[test]
fn while_loop_computes_factorials() {
    let exe = compile(&factorial_module());
    for n in [0i64, 1, 5, 12, 20] {
        let expected: i64 = (1..=n).product();
        assert_exact(
            &format!("{n}!"),
            &execute(&exe, &[Literal::scalar(n)])[0],
            &ndarray::arr0(expected),
        );
    }
}

#[test]
fn while_loop_iterates_over_an_array_state() {
    // `(k, x)`: 10 times `x = x * 0.5 + 1`; every step rounds once, so the result is exact.
    let state = Shape::Tuple(vec![Shape::scalar(S32), Shape::array(F32, &[5])]);
    let condition = computation("k_lt_10", std::slice::from_ref(&state), |b, p| {
        let k = b.get_tuple_element(p[0], 0)?;
        let ten = b.scalar(10i32)?;
        b.compare(ComparisonDirection::Lt, k, ten)
    });
    let body = computation("halve_and_add", &[state], |b, p| {
        let k = b.get_tuple_element(p[0], 0)?;
        let x = b.get_tuple_element(p[0], 1)?;
        let one = b.scalar(1i32)?;
        let next = b.add(k, one)?;
        let half = b.full_like(x, 0.5)?;
        let ones = b.full_like(x, 1.0)?;
        let scaled = b.mul(x, half)?;
        let y = b.add(scaled, ones)?;
        b.tuple(&[next, y])
    });
    let x = random(&[5], -100.0f32, 100.0, 3);
    let m = module("array_loop", &shapes_of(&[lit(&x)]), |b, p| {
        let zero = b.scalar(0i32)?;
        let init = b.tuple(&[zero, p[0]])?;
        let done = b.while_loop(&condition, &body, init)?;
        let values = [b.get_tuple_element(done, 0)?, b.get_tuple_element(done, 1)?];
        b.tuple(&values)
    });
    let out = run(&m, &[lit(&x)]);
    let expected = (0..10).fold(x.clone(), |v, _| v.mapv(|e| e * 0.5 + 1.0));
    assert_exact("iterations", &out[0], &ndarray::arr0(10i32));
    assert_exact("values", &out[1], &expected);
}

#[test]
fn conditional_on_a_predicate_runs_the_true_branch_first() {
    let x = random_f32(&[3], 4);
    let doubled = computation("double", &[Shape::array(F32, &[3])], |b, p| {
        b.add(p[0], p[0])
    });
    let from_int = computation("broadcast_int", &[Shape::scalar(S32)], |b, p| {
        let f = b.convert(p[0], F32)?;
        b.broadcast(f, &[3])
    });
    let args = [Literal::scalar(true), lit(&x), Literal::scalar(-4i32)];
    let m = module("conditional_pred", &shapes_of(&args), |b, p| {
        b.conditional(p[0], &[doubled.clone(), from_int.clone()], &[p[1], p[2]])
    });
    let exe = compile(&m);
    assert_exact("true", &execute(&exe, &args)[0], &x.mapv(|v| v + v));
    let args = [Literal::scalar(false), lit(&x), Literal::scalar(-4i32)];
    assert_exact(
        "false",
        &execute(&exe, &args)[0],
        &arr1(&[-4.0f32; 3]).into_dyn(),
    );
}

#[test]
fn conditional_on_an_index_runs_the_last_branch_when_out_of_range() {
    let shape = Shape::array(F32, &[4]);
    let branches = [
        computation("plus_one", std::slice::from_ref(&shape), |b, p| {
            let one = b.full_like(p[0], 1.0)?;
            b.add(p[0], one)
        }),
        computation("square", std::slice::from_ref(&shape), |b, p| {
            b.mul(p[0], p[0])
        }),
        computation("negate", std::slice::from_ref(&shape), |b, p| b.neg(p[0])),
    ];
    let x = random_f32(&[4], 5);
    let m = module("conditional_index", &[Shape::scalar(S32), shape], |b, p| {
        b.conditional(p[0], &branches, &[p[1]; 3])
    });
    let exe = compile(&m);
    let references: [fn(f32) -> f32; 3] = [|v| v + 1.0, |v| v * v, |v| -v];
    // XLA runs the last branch for any index outside [0, branches).
    for (index, branch) in [(0, 0), (1, 1), (2, 2), (-1, 2), (7, 2)] {
        let got = execute(&exe, &[Literal::scalar(index), lit(&x)]);
        assert_exact(
            &format!("index {index}"),
            &got[0],
            &x.mapv(references[branch]),
        );
    }
}

#[test]
fn all_reduce_sums_across_two_replicas() {
    assert_eq!(DEVICES, 2);
    let xs: Vec<ArrayD<f32>> = (0..2)
        .map(|r| random(&[2, 3], -100.0f32, 100.0, 10 + r))
        .collect();
    let ns: Vec<ArrayD<i32>> = (0..2).map(|r| random(&[4], -100i32, 100, 20 + r)).collect();
    let sum = Computation::binary_reducer(BinaryOp::Add, F32).unwrap();
    let max = Computation::binary_reducer(BinaryOp::Maximum, S32).unwrap();
    let m = module(
        "all_reduce",
        &shapes_of(&[lit(&xs[0]), lit(&ns[0])]),
        |b, p| {
            // An explicit group of both replicas, and the empty list that means all replicas.
            let values = [
                b.all_reduce(p[0], &[vec![0, 1]], &sum)?,
                b.all_reduce(p[1], &[], &max)?,
            ];
            b.tuple(&values)
        },
    );
    let args: Vec<Vec<Literal>> = (0..2).map(|r| vec![lit(&xs[r]), lit(&ns[r])]).collect();
    let out = run_replicated(&m, &args);
    // Two summands: the float sum is exact in either order.
    let total = &xs[0] + &xs[1];
    let largest = ndarray::Zip::from(&ns[0])
        .and(&ns[1])
        .map_collect(|&a, &b| a.max(b));
    for (replica, outputs) in out.iter().enumerate() {
        assert_exact(&format!("replica {replica} sum"), &outputs[0], &total);
        assert_exact(&format!("replica {replica} max"), &outputs[1], &largest);
    }
}
