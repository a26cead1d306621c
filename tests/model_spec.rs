//! Model specs against the oracles of `shared/spec/effnetv2.md`: parameter counts (section 5.2), MACs
//! (5.3), resolved tables (1.5), spatial sizes and survival probabilities (7), progressive schedules (4).

use effnetv2::model::{
    load_spec, round_filters, round_repeats, BlockType, Init, Model, ModelSpec, ParamKind,
    ScheduleVariant, Section, SpecError,
};

fn model(name: &str) -> Model {
    Model::new(load_spec(name).unwrap_or_else(|e| panic!("{e}"))).unwrap()
}

const ALL: [&str; 8] = ["b0", "b1", "b2", "b3", "s", "m", "l", "xl"];

/// (model, count_params with top, trainable with top, BN moving statistics, without FC, trainable
/// without FC, FC): spec section 5.2.
type CountRow = (&'static str, u64, u64, u64, u64, u64, u64);

#[rustfmt::skip]
const PARAM_COUNTS: [CountRow; 8] = [
    ("b0", 7_200_312, 7_139_704, 60_608, 5_919_312, 5_858_704, 1_281_000),
    ("b1", 8_212_124, 8_141_052, 71_072, 6_931_124, 6_860_052, 1_281_000),
    ("b2", 10_178_374, 10_096_086, 82_288, 8_769_374, 8_687_086, 1_409_000),
    ("b3", 14_467_622, 14_358_406, 109_216, 12_930_622, 12_821_406, 1_537_000),
    ("s", 21_612_360, 21_458_488, 153_872, 20_331_360, 20_177_488, 1_281_000),
    ("m", 54_431_388, 54_139_356, 292_032, 53_150_388, 52_858_356, 1_281_000),
    ("l", 119_027_848, 118_515_272, 512_576, 117_746_848, 117_234_272, 1_281_000),
    ("xl", 208_896_832, 208_119_808, 777_024, 207_615_832, 206_838_808, 1_281_000),
];

#[test]
fn parameter_counts_match_the_official_ones() {
    for (name, total, trainable, moving, no_fc, trainable_no_fc, fc) in PARAM_COUNTS {
        let c = model(name).param_counts();
        assert_eq!(c.total, total, "{name} count_params");
        assert_eq!(c.trainable, trainable, "{name} trainable");
        assert_eq!(c.bn_moving, moving, "{name} BN moving statistics");
        assert_eq!(c.total_without_classifier(), no_fc, "{name} without FC");
        assert_eq!(
            c.trainable_without_classifier(),
            trainable_no_fc,
            "{name} trainable without FC"
        );
        assert_eq!(c.classifier, fc, "{name} FC");
    }
}

#[test]
fn s_trainable_parameters_per_stage() {
    let m = model("s");
    let rows = m.layers(384);
    let trainable = |section: Section| {
        rows.iter()
            .filter(|r| r.section == section)
            .map(|r| r.trainable_params)
            .sum::<u64>()
    };
    assert_eq!(trainable(Section::Stem), 648 + 48);
    let stages = [10_464, 303_552, 589_184, 917_680, 3_463_840, 14_561_832];
    for (s, &expected) in stages.iter().enumerate() {
        assert_eq!(trainable(Section::Stage(s)), expected, "S stage {}", s + 1);
    }
    assert_eq!(rows[1].trainable_params, 5_232, "S stage 1 block");
    let head: Vec<u64> = rows
        .iter()
        .filter(|r| r.section == Section::Head)
        .map(|r| r.trainable_params)
        .collect();
    assert_eq!(head, [327_680 + 2_560, 1_281_000]);
}

fn assert_within_1pct(actual: u64, expected_g: f64, what: &str) {
    let g = actual as f64 / 1e9;
    let rel = (g - expected_g).abs() / expected_g;
    assert!(
        rel < 0.01,
        "{what}: {g:.4} GMACs vs {expected_g} (off by {:.2}%)",
        rel * 100.0
    );
}

/// (model, image size, GMACs): the [calc] column of spec section 5.3.
#[rustfmt::skip]
const MACS: [(&str, usize, f64); 9] = [
    ("b0", 224, 0.718), ("b1", 240, 1.197), ("b2", 260, 1.698), ("b3", 300, 3.011), ("s", 384, 8.366),
    ("s", 300, 5.308), ("m", 480, 24.582), ("l", 480, 56.080), ("xl", 512, 93.353),
];

#[test]
fn macs_at_eval_size_match_the_reference() {
    for (name, size, gmacs) in MACS {
        let m = model(name);
        assert_within_1pct(m.macs(size).total(), gmacs, &format!("{name}@{size}"));
    }
    for name in ALL {
        let eval = model(name).spec.image_size.eval;
        assert!(
            MACS.iter().any(|&(n, s, _)| n == name && s == eval),
            "{name} has no eval-size oracle"
        );
    }
}

#[test]
fn macs_at_progressive_stage_sizes() {
    let oracle = [
        ("s", [171, 214, 257, 300], [1.80, 2.74, 4.12, 5.31]),
        ("m", [192, 256, 320, 384], [3.94, 7.00, 10.93, 15.74]),
        ("l", [192, 256, 320, 384], [8.99, 15.97, 24.94, 35.90]),
    ];
    for (name, sizes, gmacs) in oracle {
        let m = model(name);
        let stages = m
            .spec
            .progressive_stages(ScheduleVariant::Official, 1000)
            .unwrap();
        for ((stage, size), g) in stages.iter().zip(sizes).zip(gmacs) {
            assert_eq!(stage.image_size, size, "{name} stage {}", stage.index);
            assert_within_1pct(m.macs(size).total(), g, &format!("{name}@{size}"));
        }
    }
}

#[test]
fn macs_breakdown_adds_up_and_counts_every_kind() {
    let m = model("s").macs(384);
    assert_eq!(m.total(), m.conv + m.depthwise + m.se + m.dense);
    assert_eq!(m.dense, 1280 * 1000);
    // Depthwise at S@384, by hand: stage 4 (24x24) first block 256 channels, 5 more at 512; stage 5
    // (24x24) 768 + 8x960; stage 6 (12x12) 960 + 14x1536; 9 MACs per output element.
    let dw = 9 * (24 * 24 * (256 + 5 * 512 + 768 + 8 * 960) + 12 * 12 * (960 + 14 * 1536));
    assert_eq!(m.depthwise, dw);
}

#[test]
fn spatial_sizes_per_stage() {
    let s = model("s");
    assert_eq!(s.stage_spatial_sizes(384), [192, 192, 96, 48, 24, 24, 12]);
    assert_eq!(s.stage_spatial_sizes(300), [150, 150, 75, 38, 19, 19, 10]);
    assert_eq!(s.stage_spatial_sizes(128), [64, 64, 32, 16, 8, 8, 4]);
    let finals = [
        ("b0", 7),
        ("b1", 8),
        ("b2", 9),
        ("b3", 10),
        ("s", 12),
        ("m", 15),
        ("l", 15),
        ("xl", 16),
    ];
    for (name, hw) in finals {
        let m = model(name);
        let sizes = m.stage_spatial_sizes(m.spec.image_size.eval);
        assert_eq!(*sizes.last().unwrap(), hw, "{name} final feature map");
    }
}

#[test]
fn block_counts_and_survival_probabilities() {
    let counts = [
        ("b0", 21),
        ("b1", 27),
        ("b2", 28),
        ("b3", 32),
        ("s", 40),
        ("m", 57),
        ("l", 79),
        ("xl", 100),
    ];
    for (name, n) in counts {
        let m = model(name);
        assert_eq!(m.blocks.len(), n, "{name} blocks");
        for (i, b) in m.blocks.iter().enumerate() {
            assert_eq!(b.index, i);
            assert!(
                (b.survival_prob - (1.0 - 0.2 * i as f64 / n as f64)).abs() < 1e-12,
                "{name} block {i}"
            );
        }
    }
    let s = model("s");
    let probs: Vec<f64> = s.blocks.iter().map(|b| b.survival_prob).collect();
    assert_eq!(probs[0], 1.0);
    assert!((probs[1] - 0.995).abs() < 1e-12);
    assert!((probs[2] - 0.99).abs() < 1e-12);
    assert!((probs[39] - 0.805).abs() < 1e-12);
}

/// One §1.5 stage row: (type, repeats, stride, expand, in, out, mid first/rest, SE first/rest, first
/// block has a residual).
type StageRow = (
    BlockType,
    usize,
    usize,
    usize,
    usize,
    usize,
    [usize; 2],
    Option<[usize; 2]>,
    bool,
);

fn check_stages(name: &str, stem: usize, head: usize, rows: &[StageRow]) {
    let m = model(name);
    assert_eq!(m.stem_filters, stem, "{name} stem");
    assert_eq!(m.head_filters, head, "{name} head");
    assert_eq!(m.stages.len(), rows.len(), "{name} stages");
    for (s, (stage, row)) in m.stages.iter().zip(rows).enumerate() {
        let &(ty, repeats, stride, expand, cin, cout, mid, se, skip) = row;
        let at = format!("{name} stage {}", s + 1);
        let got = (
            stage.block,
            stage.repeats,
            stage.in_filters,
            stage.out_filters,
        );
        assert_eq!(got, (ty, repeats, cin, cout), "{at}");
        let blocks = &m.blocks[stage.blocks.clone()];
        assert_eq!(blocks.len(), repeats, "{at}");
        let first = &blocks[0];
        assert_eq!(
            (first.stride, first.expand_ratio, first.in_filters),
            (stride, expand, cin),
            "{at} first block"
        );
        assert_eq!(first.has_residual, skip, "{at} first block residual");
        if expand != 1 {
            assert_eq!(first.mid_filters, mid[0], "{at} first mid");
        }
        assert_eq!(first.se_filters, se.map(|s| s[0]), "{at} first SE");
        for b in &blocks[1..] {
            let got = (b.stride, b.in_filters, b.out_filters, b.has_residual);
            assert_eq!(got, (1, cout, cout, true), "{at} later block");
            if expand != 1 {
                assert_eq!(b.mid_filters, mid[1], "{at} later mid");
            }
            assert_eq!(b.se_filters, se.map(|s| s[1]), "{at} later SE");
        }
    }
}

use BlockType::{Fused as F, Mbconv as M};

#[rustfmt::skip]
const S_STAGES: [StageRow; 6] = [
    (F, 2, 1, 1, 24, 24, [24, 24], None, true),
    (F, 4, 2, 4, 24, 48, [96, 192], None, false),
    (F, 4, 2, 4, 48, 64, [192, 256], None, false),
    (M, 6, 2, 4, 64, 128, [256, 512], Some([16, 32]), false),
    (M, 9, 1, 6, 128, 160, [768, 960], Some([32, 40]), false),
    (M, 15, 2, 6, 160, 256, [960, 1536], Some([40, 64]), false),
];

#[rustfmt::skip]
const M_STAGES: [StageRow; 7] = [
    (F, 3, 1, 1, 24, 24, [24, 24], None, true),
    (F, 5, 2, 4, 24, 48, [96, 192], None, false),
    (F, 5, 2, 4, 48, 80, [192, 320], None, false),
    (M, 7, 2, 4, 80, 160, [320, 640], Some([20, 40]), false),
    (M, 14, 1, 6, 160, 176, [960, 1056], Some([40, 44]), false),
    (M, 18, 2, 6, 176, 304, [1056, 1824], Some([44, 76]), false),
    (M, 5, 1, 6, 304, 512, [1824, 3072], Some([76, 128]), false),
];

#[rustfmt::skip]
const L_STAGES: [StageRow; 7] = [
    (F, 4, 1, 1, 32, 32, [32, 32], None, true),
    (F, 7, 2, 4, 32, 64, [128, 256], None, false),
    (F, 7, 2, 4, 64, 96, [256, 384], None, false),
    (M, 10, 2, 4, 96, 192, [384, 768], Some([24, 48]), false),
    (M, 19, 1, 6, 192, 224, [1152, 1344], Some([48, 56]), false),
    (M, 25, 2, 6, 224, 384, [1344, 2304], Some([56, 96]), false),
    (M, 7, 1, 6, 384, 640, [2304, 3840], Some([96, 160]), false),
];

#[rustfmt::skip]
const XL_STAGES: [StageRow; 7] = [
    (F, 4, 1, 1, 32, 32, [32, 32], None, true),
    (F, 8, 2, 4, 32, 64, [128, 256], None, false),
    (F, 8, 2, 4, 64, 96, [256, 384], None, false),
    (M, 16, 2, 4, 96, 192, [384, 768], Some([24, 48]), false),
    (M, 24, 1, 6, 192, 256, [1152, 1536], Some([48, 64]), false),
    (M, 32, 2, 6, 256, 512, [1536, 3072], Some([64, 128]), false),
    (M, 8, 1, 6, 512, 640, [3072, 3840], Some([128, 160]), false),
];

#[test]
fn resolved_tables_s_m_l_xl() {
    check_stages("s", 24, 1280, &S_STAGES);
    check_stages("m", 24, 1280, &M_STAGES);
    check_stages("l", 32, 1280, &L_STAGES);
    check_stages("xl", 32, 1280, &XL_STAGES);
}

/// (model, stem, head, repeats per stage, (in, out) per stage, SE first/rest for stages 4-6).
type BaseRow = (
    &'static str,
    usize,
    usize,
    [usize; 6],
    [(usize, usize); 6],
    [[usize; 2]; 3],
);

#[rustfmt::skip]
const BASE_MODELS: [BaseRow; 4] = [
    ("b0", 32, 1280, [1, 2, 2, 3, 5, 8], [(32, 16), (16, 32), (32, 48), (48, 96), (96, 112), (112, 192)], [[12, 24], [24, 28], [28, 48]]),
    ("b1", 32, 1280, [2, 3, 3, 4, 6, 9], [(32, 16), (16, 32), (32, 48), (48, 96), (96, 112), (112, 192)], [[12, 24], [24, 28], [28, 48]]),
    ("b2", 32, 1408, [2, 3, 3, 4, 6, 10], [(32, 16), (16, 32), (32, 56), (56, 104), (104, 120), (120, 208)], [[14, 26], [26, 30], [30, 52]]),
    ("b3", 40, 1536, [2, 3, 3, 5, 7, 12], [(40, 16), (16, 40), (40, 56), (56, 112), (112, 136), (136, 232)], [[14, 28], [28, 34], [34, 58]]),
];

#[test]
fn resolved_tables_b0_to_b3() {
    let strides = [1, 2, 2, 2, 1, 2];
    let expand = [1, 4, 4, 4, 6, 6];
    for (name, stem, head, repeats, filters, se) in BASE_MODELS {
        let rows: Vec<StageRow> = (0..6)
            .map(|s| {
                let (cin, cout) = filters[s];
                let ty = if s < 3 { F } else { M };
                let mid = [cin * expand[s], cout * expand[s]];
                let se = (s >= 3).then(|| se[s - 3]);
                (
                    ty, repeats[s], strides[s], expand[s], cin, cout, mid, se, false,
                )
            })
            .collect();
        check_stages(name, stem, head, &rows);
    }
}

#[test]
fn rounding_rules() {
    assert_eq!(
        round_filters(16, 1.2, 8, Some(8)),
        16,
        "B3: 19.2 rounds down, no 90% bump"
    );
    assert_eq!(round_filters(32, 1.2, 8, Some(8)), 40);
    assert_eq!(round_filters(1280, 1.1, 8, Some(8)), 1408);
    assert_eq!(round_filters(1280, 1.2, 8, Some(8)), 1536);
    assert_eq!(
        round_filters(48, 1.1, 8, Some(8)),
        56,
        "52.8 + 4 = 56.8 -> 56"
    );
    assert_eq!(
        round_filters(2, 1.0, 8, None),
        8,
        "min_depth defaults to the divisor"
    );
    assert_eq!(round_repeats(8, 1.1), 9);
    assert_eq!(round_repeats(5, 1.4), 7, "1.4 * 5 is exactly 7.0 in f64");
    assert_eq!(round_repeats(3, 1.4), 5);
}

#[test]
fn parameter_names_shapes_and_initialisers() {
    let m = model("s");
    let params = m.params();
    let mut names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), params.len(), "parameter names are unique");
    let get = |n: &str| {
        params
            .iter()
            .find(|p| p.name == n)
            .unwrap_or_else(|| panic!("no parameter {n}"))
    };

    let stem = get("stem/conv/kernel");
    assert_eq!(
        (stem.shape.as_slice(), stem.kind),
        (&[3, 3, 3, 24][..], ParamKind::ConvKernel)
    );
    assert_eq!(
        stem.init,
        Init::Normal {
            stddev: (2.0f64 / (3 * 3 * 24) as f64).sqrt()
        }
    );
    // Block 10 is the first MBConv block (stage 4): 64 -> 256 -> 128, SE 16.
    assert_eq!(get("blocks/10/expand/conv/kernel").shape, [1, 1, 64, 256]);
    let dw = get("blocks/10/depthwise/conv/kernel");
    assert_eq!(
        (dw.shape.as_slice(), dw.kind),
        (&[3, 3, 1, 256][..], ParamKind::DepthwiseKernel)
    );
    assert_eq!(
        dw.init,
        Init::Normal {
            stddev: (2.0f64 / 9.0).sqrt()
        }
    );
    assert_eq!(get("blocks/10/se/reduce/kernel").shape, [1, 1, 256, 16]);
    assert_eq!(get("blocks/10/se/reduce/bias").init, Init::Zeros);
    assert_eq!(get("blocks/10/se/expand/kernel").shape, [1, 1, 16, 256]);
    assert_eq!(get("blocks/10/project/conv/kernel").shape, [1, 1, 256, 128]);
    // Fused blocks: ratio 1 is a single k3 conv, ratio 4 a k3 expansion and a 1x1 projection.
    assert_eq!(get("blocks/0/fused/conv/kernel").shape, [3, 3, 24, 24]);
    assert_eq!(get("blocks/2/fused/conv/kernel").shape, [3, 3, 24, 96]);
    assert_eq!(get("blocks/2/project/conv/kernel").shape, [1, 1, 96, 48]);
    assert!(!names.contains(&"blocks/0/project/conv/kernel"));
    let gamma = get("blocks/39/project/bn/gamma");
    assert_eq!(
        (gamma.shape.as_slice(), gamma.init, gamma.trainable()),
        (&[256][..], Init::Ones, true)
    );
    let var = get("head/bn/moving_var");
    assert_eq!(
        (var.init, var.trainable(), var.weight_decayed()),
        (Init::Ones, false, false)
    );
    assert_eq!(get("head/bn/moving_mean").init, Init::Zeros);
    let dense = get("head/dense/kernel");
    assert_eq!(dense.shape, [1280, 1000]);
    assert_eq!(
        dense.init,
        Init::Uniform {
            limit: 1.0 / 1000f64.sqrt()
        }
    );
    assert_eq!(get("head/dense/bias").shape, [1000]);

    // Weight decay follows the official exclusion regex `.*(bias|gamma|beta).*` over trainable variables.
    for p in &params {
        let excluded = ["bias", "gamma", "beta"].iter().any(|w| p.name.contains(w));
        assert_eq!(p.weight_decayed(), p.trainable() && !excluded, "{}", p.name);
    }
}

#[test]
fn timm_names() {
    let m = model("s");
    let cases = [
        ("stem/conv/kernel", "conv_stem.weight"),
        ("stem/bn/gamma", "bn1.weight"),
        ("stem/bn/moving_var", "bn1.running_var"),
        ("blocks/1/fused/conv/kernel", "blocks.0.1.conv.weight"),
        ("blocks/1/fused/bn/beta", "blocks.0.1.bn1.bias"),
        ("blocks/2/fused/conv/kernel", "blocks.1.0.conv_exp.weight"),
        (
            "blocks/2/project/bn/moving_mean",
            "blocks.1.0.bn2.running_mean",
        ),
        ("blocks/10/expand/conv/kernel", "blocks.3.0.conv_pw.weight"),
        ("blocks/10/depthwise/bn/gamma", "blocks.3.0.bn2.weight"),
        ("blocks/10/se/reduce/bias", "blocks.3.0.se.conv_reduce.bias"),
        (
            "blocks/11/se/expand/kernel",
            "blocks.3.1.se.conv_expand.weight",
        ),
        (
            "blocks/39/project/conv/kernel",
            "blocks.5.14.conv_pwl.weight",
        ),
        (
            "blocks/39/project/bn/moving_var",
            "blocks.5.14.bn3.running_var",
        ),
        ("head/conv/kernel", "conv_head.weight"),
        ("head/bn/beta", "bn2.bias"),
        ("head/dense/kernel", "classifier.weight"),
        ("head/dense/bias", "classifier.bias"),
    ];
    for (ours, timm) in cases {
        assert_eq!(m.timm_name(ours).as_deref(), Some(timm), "{ours}");
    }
    for bogus in [
        "blocks/40/fused/conv/kernel",
        "blocks/0/expand/conv/kernel",
        "stem/conv/bias",
        "blocks/3/se/reduce/kernel",
        "head/conv/gamma",
    ] {
        assert_eq!(m.timm_name(bogus), None, "{bogus}");
    }
    let mut mapped: Vec<String> = m
        .params()
        .iter()
        .map(|p| m.timm_name(&p.name).expect(&p.name))
        .collect();
    let n = mapped.len();
    mapped.sort_unstable();
    mapped.dedup();
    assert_eq!(mapped.len(), n, "the mapping is one-to-one");
}

const THIRD: f64 = 1.0 / 3.0;

/// (model, image sizes, RandAugment magnitudes, mixup = cutmix alphas, dropout): spec section 4.2.
type OfficialRow = (&'static str, [usize; 4], Option<[f64; 4]>, [f64; 4], f64);

#[rustfmt::skip]
const OFFICIAL: [OfficialRow; 7] = [
    ("s", [171, 214, 257, 300], Some([5.0, 5.0 + 5.0 * THIRD, 5.0 + 10.0 * THIRD, 10.0]), [0.0; 4], 0.2),
    ("m", [192, 256, 320, 384], Some([5.0, 8.0 + THIRD, 11.0 + 2.0 * THIRD, 15.0]), [0.0, 0.2 * THIRD, 0.4 * THIRD, 0.2], 0.3),
    ("l", [192, 256, 320, 384], Some([5.0, 10.0, 15.0, 20.0]), [0.0, 0.5 * THIRD, THIRD, 0.5], 0.4),
    ("xl", [192, 256, 320, 384], Some([5.0, 10.0, 15.0, 20.0]), [0.0, 0.5 * THIRD, THIRD, 0.5], 0.4),
    ("b0", [144, 160, 176, 192], None, [0.0; 4], 0.2),
    ("b2", [148, 168, 188, 208], None, [0.0; 4], 0.3),
    ("b3", [156, 184, 212, 240], None, [0.0; 4], 0.3),
];

#[test]
fn official_progressive_schedules() {
    for (name, sizes, ra, mix, dropout) in OFFICIAL {
        let spec = load_spec(name).unwrap();
        assert_eq!(spec.progressive.default, ScheduleVariant::Official);
        let stages = spec
            .progressive_stages(ScheduleVariant::Official, 107_336)
            .unwrap();
        assert_eq!(stages.len(), 4);
        let ends: Vec<u64> = stages.iter().map(|s| s.steps.end).collect();
        assert_eq!(ends, [26_834, 53_668, 80_502, 107_336], "{name}");
        assert_eq!(stages[0].steps.start, 0);
        for (i, st) in stages.iter().enumerate() {
            assert_eq!(st.image_size, sizes[i], "{name} stage {i} size");
            match (st.randaug_magnitude, ra) {
                (Some(got), Some(want)) => {
                    assert!((got - want[i]).abs() < 1e-9, "{name} stage {i} RA {got}")
                }
                (None, None) => {}
                (got, _) => panic!("{name} stage {i}: RandAugment magnitude {got:?}"),
            }
            assert!(
                (st.mixup_alpha - mix[i]).abs() < 1e-9,
                "{name} stage {i} mixup"
            );
            assert_eq!(
                st.mixup_alpha, st.cutmix_alpha,
                "{name} stage {i}: the code uses the same alpha"
            );
            assert_eq!(
                st.dropout, dropout,
                "{name} stage {i}: dropout is not scheduled"
            );
        }
    }
    let b1 = load_spec("b1")
        .unwrap()
        .progressive_stages(ScheduleVariant::Official, 8)
        .unwrap();
    assert_eq!(b1[0].image_size, 144);
}

/// (model, image sizes = 128 + (max - 128) i / 3 truncated, RandAugment, mixup, dropout): spec section 4.1.
type PaperRow = (&'static str, [usize; 4], [f64; 4], [f64; 4], [f64; 4]);

#[rustfmt::skip]
const PAPER: [PaperRow; 3] = [
    ("s", [128, 185, 242, 300], [5.0, 8.0 + THIRD, 11.0 + 2.0 * THIRD, 15.0], [0.0; 4], [0.1, 0.1 + 0.2 * THIRD, 0.1 + 0.4 * THIRD, 0.3]),
    ("m", [128, 212, 296, 380], [5.0, 10.0, 15.0, 20.0], [0.0, 0.2 * THIRD, 0.4 * THIRD, 0.2], [0.1, 0.2, 0.3, 0.4]),
    ("l", [128, 212, 296, 380], [5.0, 11.0 + 2.0 * THIRD, 18.0 + THIRD, 25.0], [0.0, 0.4 * THIRD, 0.8 * THIRD, 0.4], [0.1, 0.1 + 0.4 * THIRD, 0.1 + 0.8 * THIRD, 0.5]),
];

#[test]
fn paper_progressive_schedules() {
    for (name, sizes, ra, mix, dropout) in PAPER {
        let stages = load_spec(name)
            .unwrap()
            .progressive_stages(ScheduleVariant::Paper, 400)
            .unwrap();
        for (i, st) in stages.iter().enumerate() {
            assert_eq!(st.image_size, sizes[i], "{name} stage {i} size");
            assert!(
                (st.randaug_magnitude.unwrap() - ra[i]).abs() < 1e-9,
                "{name} stage {i} RA"
            );
            assert!(
                (st.mixup_alpha - mix[i]).abs() < 1e-9,
                "{name} stage {i} mixup"
            );
            assert_eq!(st.cutmix_alpha, 0.0, "{name}: the paper uses no CutMix");
            assert!(
                (st.dropout - dropout[i]).abs() < 1e-9,
                "{name} stage {i} dropout {}",
                st.dropout
            );
            assert_eq!(st.steps, (i as u64 * 100)..((i as u64 + 1) * 100));
        }
    }
    let err = load_spec("b0")
        .unwrap()
        .progressive_stages(ScheduleVariant::Paper, 100)
        .unwrap_err();
    assert!(
        err.to_string().contains("efficientnetv2-b0") && err.to_string().contains("paper"),
        "{err}"
    );
}

#[test]
fn single_stage_schedule_uses_the_final_values() {
    let mut spec = load_spec("m").unwrap();
    spec.progressive.stages = 1;
    let stages = spec
        .progressive_stages(ScheduleVariant::Official, 50)
        .unwrap();
    assert_eq!(stages.len(), 1);
    assert_eq!(
        (
            stages[0].image_size,
            stages[0].randaug_magnitude,
            stages[0].mixup_alpha
        ),
        (384, Some(15.0), 0.2)
    );
    assert_eq!(stages[0].steps, 0..50);
}

fn s_json() -> serde_json::Value {
    serde_json::from_str(include_str!("../graphs/efficientnetv2-s.json")).unwrap()
}

fn invalid(v: &serde_json::Value) -> String {
    match ModelSpec::from_json(&v.to_string(), "edited.json") {
        Err(e @ (SpecError::Invalid { .. } | SpecError::Json { .. })) => e.to_string(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn inconsistent_block_table_is_rejected_naming_the_stage() {
    let mut v = s_json();
    v["stages"][3]["in"] = 72.into();
    let msg = invalid(&v);
    assert!(
        msg.starts_with("edited.json: field `stages[3].in`"),
        "{msg}"
    );
    assert!(
        msg.contains("stage 3 takes 72 input filters but stage 2 outputs 64"),
        "{msg}"
    );

    let mut v = s_json();
    v["stem"]["filters"] = 32.into();
    assert!(invalid(&v).contains("`stem.filters`"));

    let mut v = s_json();
    v["stages"][1]["se_ratio"] = 0.25.into();
    assert!(invalid(&v).contains("`stages[1].se_ratio`"));

    let mut v = s_json();
    v["stages"][4]["repeats"] = 0.into();
    assert!(invalid(&v).contains("`stages[4].repeats`"));

    let mut v = s_json();
    v["stages"][0]["expand"] = 4.into();
    assert!(invalid(&v).contains("unknown field `expand`"));

    let mut v = s_json();
    v["input"]["mean"] = serde_json::json!([128.0]);
    assert!(invalid(&v).contains("`input.mean`"));

    let mut v = s_json();
    v["progressive"]["official"]["image_size"]["max"] = 320.into();
    assert!(invalid(&v).contains("`progressive.official.image_size.max`"));

    let mut v = s_json();
    v["progressive"]["official"]
        .as_object_mut()
        .unwrap()
        .remove("randaug_magnitude");
    assert!(invalid(&v).contains("`progressive.official.randaug_magnitude`"));

    let mut v = s_json();
    v["dropout"] = 1.5.into();
    assert!(invalid(&v).contains("`dropout`"));
}

/// The network as it resolves is bounded too, not only each field: the fuzz target `model_specs`
/// found an eval size of u64::MAX overflowing the MAC count, and the field bounds still let a
/// multiplier scale widths and block counts 64 times.
#[test]
fn resolved_sizes_beyond_the_limits_are_rejected_naming_the_field() {
    #[rustfmt::skip]
    let cases: [(&[(&str, serde_json::Value)], &str); 4] = [
        (
            &[("/image_size/eval", u64::MAX.into())],
            "`image_size.eval`: 18446744073709551615 is larger than the supported maximum 8192",
        ),
        (
            &[("/stages/5/repeats", 1000.into())],
            "`stages[5].repeats`: the network has 1025 blocks up to stage 5 after depth scaling",
        ),
        (
            &[("/width_multiplier", 64.0.into())],
            "`stages[5].expand_ratio`: expands 16384 channels 6 times",
        ),
        (
            &[("/width_multiplier", 64.0.into()), ("/stages/5/expand_ratio", 1.into())],
            "`head.feature_size`: 1280 filters are 81920 channels after width scaling",
        ),
    ];
    for (edits, expected) in cases {
        let mut v = s_json();
        for (pointer, value) in edits.iter().cloned() {
            *v.pointer_mut(pointer).unwrap() = value;
        }
        let msg = invalid(&v);
        assert!(msg.contains(expected), "{edits:?}: {msg}");
    }
}

/// MAC counts saturate instead of overflowing at image sizes no spec names.
#[test]
fn macs_at_an_absurd_image_size_saturate() {
    let m = model("xl");
    assert_eq!(m.macs(usize::MAX).total(), u64::MAX);
    assert!(m.summary(usize::MAX).contains("18,446,744,073,709,551,615"));
}

#[test]
fn oversized_fields_are_named_before_anything_is_allocated() {
    let mut v = s_json();
    v["head"]["feature_size"] = 1_000_000_000_000u64.into();
    let msg = invalid(&v);
    assert!(
        msg.contains("`head.feature_size`")
            && msg.contains("1000000000000 is larger than the supported maximum 65536"),
        "{msg}"
    );
    for (path, value) in [
        (&["stages", "2", "kernel"][..], 99u64),
        (&["image_size", "train"][..], 100_000),
        (&["num_classes"][..], 1 << 30),
        (&["stages", "0", "repeats"][..], 5000),
    ] {
        let mut v = s_json();
        let mut at = &mut v;
        for key in &path[..path.len() - 1] {
            at = match key.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*key],
            };
        }
        at[path[path.len() - 1]] = value.into();
        let msg = invalid(&v);
        let field = path.join(".").replace(".2.", "[2].").replace(".0.", "[0].");
        assert!(msg.contains(&format!("`{field}`")), "{msg}");
    }
}

#[test]
fn edited_specs_are_validated_again() {
    let mut spec = load_spec("s").unwrap();
    spec.depth_divisor = 0;
    let err = Model::new(spec).unwrap_err().to_string();
    assert!(
        err.contains("efficientnetv2-s: field `depth_divisor`"),
        "{err}"
    );
    let mut spec = load_spec("s").unwrap();
    spec.progressive.paper.as_mut().unwrap().image_size.min = 400;
    let err = spec
        .progressive_stages(ScheduleVariant::Paper, 10)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`progressive.paper.image_size`"), "{err}");
}

#[test]
fn loading_by_name_and_path() {
    for name in ALL.iter().chain(&["tiny"]) {
        let spec = load_spec(name).unwrap();
        assert_eq!(spec.name, format!("efficientnetv2-{name}"));
        assert_eq!(load_spec(&spec.name).unwrap(), spec);
        assert_eq!(load_spec(&name.to_uppercase()).unwrap(), spec);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.json");
    let mut v = s_json();
    v["name"] = "my-model".into();
    v["num_classes"] = 10.into();
    std::fs::write(&path, v.to_string()).unwrap();
    let spec = load_spec(path.to_str().unwrap()).unwrap();
    assert_eq!((spec.name.as_str(), spec.num_classes), ("my-model", 10));

    let err = load_spec("efficientnetv2-q").unwrap_err().to_string();
    assert!(
        err.contains("unknown model `efficientnetv2-q`") && err.contains("b0, b1"),
        "{err}"
    );
    std::fs::write(&path, "{").unwrap();
    let err = load_spec(path.to_str().unwrap()).unwrap_err().to_string();
    assert!(
        err.starts_with(path.to_str().unwrap()) && err.contains("invalid model spec JSON"),
        "{err}"
    );
}

#[test]
fn specs_round_trip_through_serde() {
    for name in ALL.iter().chain(&["tiny"]) {
        let spec = load_spec(name).unwrap();
        let text = serde_json::to_string_pretty(&spec).unwrap();
        assert_eq!(
            ModelSpec::from_json(&text, "round trip").unwrap(),
            spec,
            "{name}"
        );
    }
}

#[test]
fn tiny_variant() {
    let m = model("tiny");
    let spec = &m.spec;
    assert_eq!(
        (spec.num_classes, spec.input.channels, spec.image_size.train),
        (10, 3, 28),
        "the data pipeline turns greyscale into 3 channels"
    );
    let types: Vec<BlockType> = m.stages.iter().map(|s| s.block).collect();
    assert_eq!(types, [F, F, M, M]);
    assert!(m
        .blocks
        .iter()
        .any(|b| b.block == M && b.se_filters.is_some()));
    assert_eq!(m.stage_spatial_sizes(28), [14, 14, 7, 4, 4]);
    assert_eq!(m.stage_spatial_sizes(64), [32, 32, 16, 8, 8]);
    let c = m.param_counts();
    assert!(
        c.trainable < 300_000,
        "tiny has {} trainable parameters",
        c.trainable
    );
    assert!(
        m.macs(28).total() < 10_000_000,
        "tiny needs {} MACs at 28 px",
        m.macs(28).total()
    );
    let sizes: Vec<usize> = spec
        .progressive_stages(spec.progressive.default, 100)
        .unwrap()
        .iter()
        .map(|s| s.image_size)
        .collect();
    assert_eq!(sizes, [16, 20, 24, 28]);
}

#[test]
fn summary_table() {
    let m = model("s");
    let text = m.summary(384);
    let lines: Vec<&str> = text.lines().collect();
    // title, header, rule, stem + 40 blocks + head conv + classifier, rule, 2 totals
    assert_eq!(lines.len(), 3 + 43 + 3, "{text}");
    assert!(lines[0].starts_with("efficientnetv2-s at 384x384x3, 1000 classes, 40 blocks"));
    let row = lines.iter().find(|l| l.contains("blocks/10 ")).unwrap();
    assert!(
        row.contains("mbconv4 k3 s2 se") && row.contains("24x24x128"),
        "{row}"
    );
    let first = lines.iter().find(|l| l.contains("blocks/0 ")).unwrap();
    assert!(
        first.contains("192x192x24") && first.contains("5,280"),
        "{first}"
    );
    assert!(
        text.contains("params: 21,612,360 (trainable 21,458,488, BN moving statistics 153,872)"),
        "{text}"
    );
    let rows = m.layers(384);
    assert_eq!(rows.iter().map(|r| r.params).sum::<u64>(), 21_612_360);
    assert_eq!(rows.last().unwrap().output, [1000]);
}
