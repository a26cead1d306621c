//! The forward graph of a full-size model compiles and runs on the CPU plugin: EfficientNetV2-S at
//! 128 px in inference mode gives finite logits of the right shape, deterministically.

mod common;

use common::{compile, execute};
use effnetv2::hlo::{Builder, ElementType, Literal, Module, Shape};
use effnetv2::model::graph::{forward, Lowering, Mode, Weights};
use effnetv2::model::Backend;
use effnetv2::model::{load_spec, Init, Model};

#[test]
fn efficientnetv2_s_forward_at_128px_runs_on_the_cpu_plugin() {
    let model = Model::new(load_spec("s").unwrap()).unwrap();
    let params = model.params();
    let mut b = Builder::new("s_forward");
    let mut weights = Weights::default();
    let mut args = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let dims: Vec<i64> = p.shape.iter().map(|&d| d as i64).collect();
        weights.0.insert(
            p.name.clone(),
            b.parameter(
                i as i64,
                Shape::array(ElementType::F32, &dims),
                p.name.clone(),
            )
            .unwrap(),
        );
        // Deterministic small values in place of random draws (the kind of init is kept).
        let n = p.numel() as usize;
        let values: Vec<f32> = match p.init {
            Init::Ones => vec![1.0; n],
            Init::Zeros => vec![0.0; n],
            Init::Normal { stddev } | Init::Uniform { limit: stddev } => (0..n)
                .map(|k| (((k * 7919 + i * 104_729) % 2001) as f32 / 1000.0 - 1.0) * stddev as f32)
                .collect(),
        };
        args.push(Literal::from_vec(&dims, &values).unwrap());
    }
    let batch = 2;
    let images = b
        .parameter(
            params.len() as i64,
            Shape::array(ElementType::F32, &[batch, 128, 128, 3]),
            "images",
        )
        .unwrap();
    args.push(
        Literal::from_vec(
            &[batch, 128, 128, 3],
            &(0..batch * 128 * 128 * 3)
                .map(|k| ((k % 255) as f32 - 128.0) / 128.0)
                .collect::<Vec<_>>(),
        )
        .unwrap(),
    );
    let lowering = Lowering {
        compute: ElementType::F32,
        backend: Backend::Cpu,
    };
    let out = forward(&mut b, &model, &weights, images, lowering, Mode::Eval).unwrap();
    let module = Module::new("s_forward_128", b.build(out.logits).unwrap());
    let exe = compile(&module);
    let first = execute(&exe, &args);
    assert_eq!(first[0].shape().dims(), [batch, 1000]);
    assert!(first[0]
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .all(|x| x.is_finite()));
    let second = execute(&exe, &args);
    assert_eq!(
        first[0].bytes(),
        second[0].bytes(),
        "inference mode is deterministic"
    );
}
