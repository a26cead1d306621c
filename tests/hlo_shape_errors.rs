//! Shape errors are caught by the builder, never by XLA: every malformed op returns `Err` whose
//! message names the op, shows its operand shapes and says what is wrong.

use effnetv2::hlo::{
    BinaryOp, Builder, ComparisonDirection, Computation, ConvDimensionNumbers, ConvSpec,
    DotDimensionNumbers, ElementType, GatherDimensionNumbers, HloError, Module, PadDim,
    RandomAlgorithm, Shape, Value, WindowDim,
};
use ElementType::{Pred, F32, F64, S32, U64};

/// Asserts that `result` failed in `op` and that its message contains every fragment.
#[track_caller]
fn expect_error<T: std::fmt::Debug>(result: Result<T, HloError>, op: &str, fragments: &[&str]) {
    let err = result.expect_err("the builder accepted a malformed op");
    let text = err.to_string();
    assert_eq!(err.op, op, "{text}");
    assert!(
        text.starts_with(op),
        "the message starts with the op name: {text}"
    );
    for fragment in fragments {
        assert!(text.contains(fragment), "expected {fragment:?} in: {text}");
    }
}

fn param(b: &mut Builder, n: i64, ty: ElementType, dims: &[i64]) -> Value {
    b.parameter(n, Shape::array(ty, dims), format!("p{n}"))
        .unwrap()
}

/// A builder with parameters of the given types and dimensions.
fn with_params(shapes: &[(ElementType, &[i64])]) -> (Builder, Vec<Value>) {
    let mut b = Builder::new("errors");
    let values = shapes
        .iter()
        .enumerate()
        .map(|(i, (ty, dims))| param(&mut b, i as i64, *ty, dims))
        .collect();
    (b, values)
}

#[test]
fn elementwise_operands_must_agree() {
    let (mut b, p) = with_params(&[(F32, &[2, 3]), (F32, &[3, 2]), (S32, &[2, 3])]);
    expect_error(
        b.add(p[0], p[1]),
        "add",
        &[
            "f32[2,3]{1,0}",
            "f32[3,2]{1,0}",
            "same element type and dimensions",
        ],
    );
    expect_error(
        b.mul(p[0], p[2]),
        "multiply",
        &["f32[2,3]{1,0}", "s32[2,3]{1,0}"],
    );
    expect_error(
        b.compare(ComparisonDirection::Lt, p[0], p[1]),
        "compare",
        &["f32[3,2]{1,0}"],
    );
}

#[test]
fn ops_reject_element_types_they_are_not_defined_for() {
    let (mut b, p) = with_params(&[(S32, &[4]), (F32, &[4]), (Pred, &[4])]);
    expect_error(
        b.exp(p[0]),
        "exponential",
        &["s32[4]{0}", "not defined for element type s32"],
    );
    expect_error(b.is_finite(p[0]), "is-finite", &["s32"]);
    expect_error(
        b.not(p[1]),
        "not",
        &["f32[4]{0}", "not defined for element type f32"],
    );
    expect_error(b.atan2(p[0], p[0]), "atan2", &["element type s32"]);
    expect_error(b.and(p[1], p[1]), "and", &["element type f32"]);
    expect_error(b.add(p[2], p[2]), "add", &["element type pred"]);
    expect_error(b.iota_of(Pred, &[3], 0), "iota", &["pred"]);
}

#[test]
fn select_and_clamp_check_their_operands() {
    let (mut b, p) = with_params(&[
        (Pred, &[3]),
        (F32, &[2, 3]),
        (F32, &[2, 3]),
        (F32, &[3]),
        (S32, &[2, 3]),
    ]);
    expect_error(
        b.select(p[0], p[1], p[2]),
        "select",
        &[
            "pred[3]{0}",
            "f32[2,3]{1,0}",
            "the predicate must be a pred array",
        ],
    );
    expect_error(
        b.select(p[1], p[1], p[2]),
        "select",
        &["the predicate must be"],
    );
    expect_error(b.select(p[0], p[3], p[4]), "select", &["same element type"]);
    expect_error(
        b.clamp(p[3], p[1], p[2]),
        "clamp",
        &[
            "f32[3]{0}",
            "bounds must be scalars or arrays with the operand's shape",
        ],
    );
}

#[test]
fn bitcast_convert_needs_equal_widths() {
    let (mut b, p) = with_params(&[(F32, &[2])]);
    expect_error(
        b.bitcast_convert(p[0], F64),
        "bitcast-convert",
        &["f32[2]{0}", "cannot reinterpret f32 as f64"],
    );
}

#[test]
fn shape_ops_check_sizes_and_dimensions() {
    let (mut b, p) = with_params(&[(F32, &[2, 3]), (F32, &[2, 4]), (S32, &[]), (F32, &[])]);
    let x = p[0];
    expect_error(
        b.broadcast_in_dim(x, &[2, 5], &[0, 1]),
        "broadcast",
        &["f32[2,3]{1,0}", "operand dimension 1 has size 3"],
    );
    expect_error(
        b.broadcast_in_dim(x, &[3, 2], &[1, 0]),
        "broadcast",
        &["must be increasing"],
    );
    expect_error(
        b.broadcast_in_dim(x, &[2, 3], &[0]),
        "broadcast",
        &["1 dimension mappings for a rank-2 operand"],
    );
    expect_error(
        b.reshape(x, &[4, 2]),
        "reshape",
        &["f32[2,3]{1,0}", "cannot reshape 6 elements into [4, 2]"],
    );
    expect_error(
        b.reshape(x, &[-1, 6]),
        "reshape",
        &["negative dimension size -1"],
    );
    expect_error(
        b.transpose(x, &[0, 0]),
        "transpose",
        &["[0, 0] is not a permutation of 2 dimensions"],
    );
    expect_error(
        b.slice(x, &[0, 1], &[2, 4], &[1, 1]),
        "slice",
        &["dimension 1: slice [1:4:1] does not fit size 3"],
    );
    expect_error(
        b.slice(x, &[0], &[2], &[1]),
        "slice",
        &["need 2 entries each"],
    );
    expect_error(b.slice(x, &[0, 0], &[2, 3], &[1, 0]), "slice", &["[0:3:0]"]);
    expect_error(
        b.reverse(x, &[2]),
        "reverse",
        &["dimensions [2] out of range"],
    );
    expect_error(
        b.concatenate(&[x, p[1]], 0),
        "concatenate",
        &["f32[2,3]{1,0}", "f32[2,4]{1,0}", "every dimension but 0"],
    );
    expect_error(
        b.concatenate(&[x, p[1]], 2),
        "concatenate",
        &["dimension 2 is out of range"],
    );
    expect_error(
        b.concatenate(&[], 0),
        "concatenate",
        &["at least one operand"],
    );
    expect_error(
        b.iota_of(S32, &[3], 1),
        "iota",
        &["dimension 1 is out of range for s32[3]{0}"],
    );
    let zero = p[2];
    expect_error(
        b.dynamic_slice(x, &[zero, zero], &[3, 1]),
        "dynamic-slice",
        &["slice sizes [3, 1] do not fit"],
    );
    expect_error(
        b.dynamic_slice(x, &[zero], &[1, 1]),
        "dynamic-slice",
        &["1 start indices for rank 2"],
    );
    expect_error(
        b.dynamic_slice(x, &[zero, p[3]], &[1, 1]),
        "dynamic-slice",
        &["f32[]", "integer scalars"],
    );
    expect_error(
        b.dynamic_update_slice(x, p[1], &[zero, zero]),
        "dynamic-update-slice",
        &["f32[2,4]{1,0}", "fit inside it"],
    );
}

#[test]
fn pad_checks_value_and_sizes() {
    let (mut b, p) = with_params(&[(F32, &[2, 3]), (F32, &[]), (S32, &[])]);
    let keep = PadDim {
        low: 0,
        high: 0,
        interior: 0,
    };
    expect_error(
        b.pad(p[0], p[2], &[keep, keep]),
        "pad",
        &["s32[]", "a scalar of the operand's type"],
    );
    expect_error(
        b.pad(p[0], p[1], &[keep]),
        "pad",
        &["1 padding entries for rank 2"],
    );
    let crop_all = PadDim {
        low: -2,
        high: -2,
        interior: 0,
    };
    expect_error(
        b.pad(p[0], p[1], &[keep, crop_all]),
        "pad",
        &["dimension 1", "negative size"],
    );
    let negative_interior = PadDim {
        low: 0,
        high: 0,
        interior: -1,
    };
    expect_error(
        b.pad(p[0], p[1], &[negative_interior, keep]),
        "pad",
        &["dimension 0"],
    );
}

#[test]
fn reductions_check_reducers_dimensions_and_windows() {
    let (mut b, p) = with_params(&[
        (S32, &[4, 5]),
        (F32, &[4, 5]),
        (F32, &[]),
        (F32, &[5]),
        (S32, &[]),
    ]);
    let sum_f32 = Computation::binary_reducer(BinaryOp::Add, F32).unwrap();
    expect_error(
        b.reduce(&[p[0]], &[p[4]], &[1], &sum_f32),
        "reduce",
        &["s32[4,5]{1,0}", "reducer 'add_f32' has signature (f32[], f32[]) -> f32[], expected (s32[], s32[]) -> s32[]"],
    );
    expect_error(
        b.reduce(&[p[1]], &[p[2]], &[2], &sum_f32),
        "reduce",
        &["[2] must be distinct and below rank 2"],
    );
    expect_error(
        b.reduce(&[p[1]], &[p[2]], &[0, 0], &sum_f32),
        "reduce",
        &["distinct"],
    );
    expect_error(
        b.reduce(&[p[1]], &[p[3]], &[0], &sum_f32),
        "reduce",
        &["f32[5]{0}", "each init must be a scalar"],
    );
    expect_error(
        b.reduce(&[p[1], p[3]], &[p[2], p[2]], &[0], &sum_f32),
        "reduce",
        &["operands must share dimensions"],
    );
    expect_error(
        b.reduce(&[p[1]], &[], &[0], &sum_f32),
        "reduce",
        &["one scalar init value per operand"],
    );

    let w = WindowDim::new(2);
    expect_error(
        b.reduce_window(p[1], p[2], &[w], &sum_f32),
        "reduce-window",
        &[
            "f32[4,5]{1,0}",
            "window has 1 dimensions, operand rank is 2",
        ],
    );
    expect_error(
        b.reduce_window(p[1], p[2], &[w, w.stride(0)], &sum_f32),
        "reduce-window",
        &["window dimension 1", "invalid for size 5"],
    );
    expect_error(
        b.reduce_window(p[1], p[3], &[w, w], &sum_f32),
        "reduce-window",
        &["init must be a scalar"],
    );

    let source = param(&mut b, 5, F32, &[3, 3]);
    let ge = {
        let mut s = Builder::new("ge");
        let x = s.parameter(0, Shape::scalar(F32), "a").unwrap();
        let y = s.parameter(1, Shape::scalar(F32), "b").unwrap();
        let r = s.compare(ComparisonDirection::Ge, x, y).unwrap();
        s.build(r).unwrap()
    };
    expect_error(
        b.select_and_scatter(p[1], &ge, &[w, w], source, p[2], &sum_f32),
        "select-and-scatter",
        &[
            "f32[3,3]{1,0}",
            "source must have the windowed output shape [3, 4]",
        ],
    );
    let source = param(&mut b, 6, F32, &[3, 4]);
    expect_error(
        b.select_and_scatter(p[1], &sum_f32, &[w, w], source, p[2], &sum_f32),
        "select-and-scatter",
        &["select 'add_f32' must map two f32 scalars to pred"],
    );
}

fn conv_spec(
    window: &[WindowDim],
    dn: ConvDimensionNumbers,
    feature_groups: i64,
    batch_groups: i64,
) -> ConvSpec {
    ConvSpec {
        window: window.to_vec(),
        dimension_numbers: dn,
        feature_group_count: feature_groups,
        batch_group_count: batch_groups,
    }
}

#[test]
fn convolution_checks_features_windows_and_groups() {
    let (mut b, p) = with_params(&[
        (F32, &[2, 5, 5, 3]),
        (F32, &[3, 3, 4, 8]),
        (F32, &[3, 3, 3, 8]),
        (F64, &[3, 3, 3, 8]),
    ]);
    let (x, k4, k3) = (p[0], p[1], p[2]);
    let w3 = [WindowDim::new(3); 2];
    expect_error(
        b.convolution(x, k4, &conv_spec(&w3, ConvDimensionNumbers::nhwc(), 1, 1)),
        "convolution",
        &[
            "f32[2,5,5,3]{3,2,1,0}",
            "f32[3,3,4,8]{3,2,1,0}",
            "input has 3 features but kernel input features 4 x feature_group_count 1 = 4",
        ],
    );
    expect_error(
        b.convolution(x, p[3], &conv_spec(&w3, ConvDimensionNumbers::nhwc(), 1, 1)),
        "convolution",
        &["input is f32 but kernel is f64"],
    );
    expect_error(
        b.convolution(
            x,
            k3,
            &conv_spec(&[WindowDim::new(2); 2], ConvDimensionNumbers::nhwc(), 1, 1),
        ),
        "convolution",
        &["window size 2 of spatial dimension 0 differs from the kernel size 3"],
    );
    expect_error(
        b.convolution(
            x,
            k3,
            &conv_spec(&w3[..1], ConvDimensionNumbers::nhwc(), 1, 1),
        ),
        "convolution",
        &["need rank-3 input and kernel"],
    );
    expect_error(
        b.convolution(x, k3, &conv_spec(&w3, ConvDimensionNumbers::nhwc(), 3, 1)),
        "convolution",
        &["feature_group_count 3 = 9"],
    );
    expect_error(
        b.convolution(x, k3, &conv_spec(&w3, ConvDimensionNumbers::nhwc(), 1, 3)),
        "convolution",
        &["divisible"],
    );
    expect_error(
        b.convolution(x, k3, &conv_spec(&w3, ConvDimensionNumbers::nhwc(), 1, 0)),
        "convolution",
        &["must be >= 1"],
    );
    let mut dn = ConvDimensionNumbers::nhwc();
    dn.input_spatial = vec![1, 1];
    expect_error(
        b.convolution(x, k3, &conv_spec(&w3, dn, 1, 1)),
        "convolution",
        &["do not assign each dimension exactly one role"],
    );
    let strided = [WindowDim::new(3).stride(0); 2];
    expect_error(
        b.convolution(
            x,
            k3,
            &conv_spec(&strided, ConvDimensionNumbers::nhwc(), 1, 1),
        ),
        "convolution",
        &["is invalid for spatial size 5"],
    );
}

#[test]
fn dot_general_checks_contracted_and_batch_sizes() {
    let (mut b, p) = with_params(&[
        (F32, &[2, 3, 4]),
        (F32, &[2, 5, 6]),
        (F32, &[3, 4, 6]),
        (F64, &[4, 6]),
    ]);
    let dn = |lc: i64, rc: i64, batch: bool| DotDimensionNumbers {
        lhs_contracting: vec![lc],
        rhs_contracting: vec![rc],
        lhs_batch: if batch { vec![0] } else { vec![] },
        rhs_batch: if batch { vec![0] } else { vec![] },
    };
    expect_error(
        b.dot_general(p[0], p[1], &dn(2, 1, true)),
        "dot",
        &[
            "f32[2,3,4]{2,1,0}",
            "f32[2,5,6]{2,1,0}",
            "lhs dimension 2 (size 4) does not match rhs dimension 1 (size 5)",
        ],
    );
    expect_error(
        b.dot_general(p[0], p[2], &dn(2, 1, true)),
        "dot",
        &["lhs dimension 0 (size 2) does not match rhs dimension 0 (size 3)"],
    );
    expect_error(
        b.dot_general(p[0], p[2], &dn(0, 0, true)),
        "dot",
        &["repeat a dimension"],
    );
    expect_error(
        b.dot_general(p[0], p[2], &dn(3, 0, false)),
        "dot",
        &["exceed the operand ranks"],
    );
    expect_error(
        b.dot_general(p[0], p[3], &dn(2, 0, false)),
        "dot",
        &["different element types f32 and f64"],
    );
    let uneven = DotDimensionNumbers {
        lhs_contracting: vec![2],
        rhs_contracting: vec![],
        ..Default::default()
    };
    expect_error(
        b.dot_general(p[0], p[2], &uneven),
        "dot",
        &["same number of contracting and batch dimensions"],
    );
}

fn computation(
    name: &str,
    params: &[Shape],
    body: impl FnOnce(&mut Builder, &[Value]) -> Value,
) -> Computation {
    let mut b = Builder::new(name);
    let values: Vec<Value> = params
        .iter()
        .enumerate()
        .map(|(i, s)| b.parameter(i as i64, s.clone(), "x").unwrap())
        .collect();
    let root = body(&mut b, &values);
    b.build(root).unwrap()
}

#[test]
fn tuples_rng_and_control_flow_check_their_operands() {
    let (mut b, p) = with_params(&[
        (F32, &[3]),
        (U64, &[2]),
        (S32, &[]),
        (Pred, &[]),
        (F32, &[]),
    ]);
    expect_error(
        b.get_tuple_element(p[0], 0),
        "get-tuple-element",
        &["f32[3]{0}", "index 0 does not name an element"],
    );
    let t = b.tuple(&[p[0], p[2]]).unwrap();
    expect_error(
        b.get_tuple_element(t, 2),
        "get-tuple-element",
        &["(f32[3]{0}, s32[])", "index 2"],
    );

    let bits = effnetv2::hlo::ArrayShape::new(ElementType::U32, &[4]);
    expect_error(
        b.rng_bit_generator(RandomAlgorithm::ThreeFry, p[0], &bits),
        "rng-bit-generator",
        &["f32[3]{0}", "rank-1 u64"],
    );
    let floats = effnetv2::hlo::ArrayShape::new(F32, &[4]);
    expect_error(
        b.rng_bit_generator(RandomAlgorithm::ThreeFry, p[1], &floats),
        "rng-bit-generator",
        &["cannot generate bits of type f32"],
    );
    let signed = effnetv2::hlo::ArrayShape::new(S32, &[4]);
    expect_error(
        b.rng_bit_generator(RandomAlgorithm::Philox, p[1], &signed),
        "rng-bit-generator",
        &["cannot generate bits of type s32 (u8, u32 or u64 only)"],
    );

    let scalar_f32 = Shape::scalar(F32);
    let is_positive = computation("is_positive", std::slice::from_ref(&scalar_f32), |c, x| {
        let zero = c.scalar(0.0f32).unwrap();
        c.compare(ComparisonDirection::Gt, x[0], zero).unwrap()
    });
    let to_vector = computation("to_vector", std::slice::from_ref(&scalar_f32), |c, x| {
        c.broadcast(x[0], &[2]).unwrap()
    });
    let identity = computation("identity", std::slice::from_ref(&scalar_f32), |_, x| x[0]);
    expect_error(
        b.while_loop(&is_positive, &to_vector, p[4]),
        "while",
        &[
            "f32[]",
            "body 'to_vector' must map the loop state to itself, got f32[2]{0}",
        ],
    );
    expect_error(
        b.while_loop(&identity, &identity, p[4]),
        "while",
        &["condition 'identity' must map the loop state to pred[]"],
    );
    expect_error(
        b.while_loop(&is_positive, &identity, p[0]),
        "while",
        &["f32[3]{0}", "condition 'is_positive'"],
    );

    expect_error(
        b.conditional(p[4], &[identity.clone(), identity.clone()], &[p[4], p[4]]),
        "conditional",
        &["f32[]", "needs a pred selector"],
    );
    expect_error(
        b.conditional(
            p[3],
            &[identity.clone(), identity.clone(), identity.clone()],
            &[p[4], p[4], p[4]],
        ),
        "conditional",
        &["pred[]", "needs a pred selector with 2 branches"],
    );
    expect_error(
        b.conditional(p[2], std::slice::from_ref(&identity), &[p[4], p[4]]),
        "conditional",
        &["one operand per branch"],
    );
    expect_error(
        b.conditional(p[2], &[identity.clone(), to_vector], &[p[4], p[4]]),
        "conditional",
        &["branch 'to_vector' must take its operand and return f32[]"],
    );
    expect_error(
        b.conditional(p[3], &[identity.clone(), identity], &[p[4], p[0]]),
        "conditional",
        &["f32[3]{0}", "branch 'identity'"],
    );

    let sum_s32 = Computation::binary_reducer(BinaryOp::Add, S32).unwrap();
    expect_error(
        b.all_reduce(p[0], &[vec![0, 1]], &sum_s32),
        "all-reduce",
        &[
            "f32[3]{0}",
            "reducer 'add_s32' must combine two f32 scalars",
        ],
    );
}

#[test]
fn values_parameters_and_aliases_are_checked() {
    let (mut b, p) = with_params(&[(F32, &[2])]);
    let (other, q) = with_params(&[(F32, &[2])]);
    expect_error(
        b.add(p[0], q[0]),
        "add",
        &["belongs to another computation than 'errors'"],
    );
    expect_error(other.build(p[0]), "build", &["another computation"]);
    expect_error(
        b.parameter(0, Shape::scalar(F32), "again"),
        "parameter",
        &["parameter 0 is declared twice"],
    );
    expect_error(
        b.parameter(-1, Shape::scalar(F32), "negative"),
        "parameter",
        &["parameter number -1 is negative"],
    );

    let mut gap = Builder::new("gap");
    let x = gap.parameter(1, Shape::scalar(F32), "x").unwrap();
    expect_error(
        gap.build(x),
        "build",
        &["computation 'gap' has no parameter 0"],
    );

    let y = param(&mut b, 1, S32, &[2]);
    let t = b.tuple(&[p[0], y]).unwrap();
    let mut module = Module::new("aliases", b.build(t).unwrap());
    expect_error(
        module.alias(&[1], 0, &[]),
        "input_output_alias",
        &["output [1] has shape s32[2]{0} but parameter 0 [] has f32[2]{0}"],
    );
    expect_error(
        module.alias(&[0], 2, &[]),
        "input_output_alias",
        &["parameter 2 does not exist (the entry has 2)"],
    );
    module.alias(&[0], 0, &[]).unwrap();
    expect_error(
        module.alias(&[0], 0, &[]),
        "input_output_alias",
        &["already aliased"],
    );
}

#[test]
fn gather_checks_its_dimension_numbers() {
    let (mut b, p) = with_params(&[(F32, &[6, 3]), (S32, &[4]), (F32, &[4])]);
    let dn = GatherDimensionNumbers {
        offset_dims: vec![1],
        collapsed_slice_dims: vec![0],
        start_index_map: vec![0],
        index_vector_dim: 1,
    };
    expect_error(b.gather(p[0], p[2], &dn, &[1, 3]), "gather", &["integers"]);
    expect_error(
        b.gather(p[0], p[1], &dn, &[2, 3]),
        "gather",
        &["collapsed slice dimensions must have size 1"],
    );
    expect_error(
        b.gather(p[0], p[1], &dn, &[1, 4]),
        "gather",
        &["slice sizes [1, 4] do not fit"],
    );
    let two_starts = GatherDimensionNumbers {
        start_index_map: vec![0, 1],
        ..dn.clone()
    };
    expect_error(
        b.gather(p[0], p[1], &two_starts, &[1, 3]),
        "gather",
        &["one entry per index vector element (1)"],
    );
    let no_offsets = GatherDimensionNumbers {
        offset_dims: vec![],
        ..dn.clone()
    };
    expect_error(
        b.gather(p[0], p[1], &no_offsets, &[1, 3]),
        "gather",
        &["offset_dims [] must be 1 increasing result dimensions"],
    );
    let shape = b.gather(p[0], p[1], &dn, &[1, 3]).unwrap();
    assert_eq!(b.shape(shape), &Shape::array(F32, &[4, 3]));
}
