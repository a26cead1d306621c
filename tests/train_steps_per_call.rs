//! K train steps per executable call (a `while` loop over K stacked batches) train exactly what
//! K calls of the one-step graph train on the same batches: same weights, optimizer slots, EMA,
//! batch-norm statistics, step counter and random key, with dropout and stochastic depth on;
//! a call may train on fewer than K of its slots. With `skip_nonfinite`, a step that is not
//! finite leaves the state as it was.

use effnetv2::hlo::Literal;
use effnetv2::model::{load_spec, Model};
use effnetv2::program::context::Context;
use effnetv2::program::device_state::{DeviceState, StepOutcome};
use effnetv2::runtime::provision::PluginKind;
use effnetv2::step::graphs::{port, train_step, Precision, StepConfig};
use effnetv2::step::state::StateLayout;
use effnetv2::trainer::init::initial_state;
use rand::{Rng, SeedableRng};

const K: usize = 4;
/// Steps trained: a full call of K, then one of 2.
const STEPS: usize = 6;
const BATCH: usize = 16;
const SIZE: usize = 16;
const CLASSES: usize = 10;

/// One batch's images, one-hot labels and classes.
struct Batch {
    images: Vec<f32>,
    labels: Vec<f32>,
    classes: Vec<i32>,
}

fn batches() -> Vec<Batch> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    (0..STEPS)
        .map(|_| {
            let images = (0..BATCH * SIZE * SIZE * 3)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let classes: Vec<i32> = (0..BATCH)
                .map(|_| rng.gen_range(0..CLASSES as i32))
                .collect();
            let labels = classes
                .iter()
                .flat_map(|&c| (0..CLASSES as i32).map(move |k| f32::from(k == c)))
                .collect();
            Batch {
                images,
                labels,
                classes,
            }
        })
        .collect()
}

fn literal<T: effnetv2::hlo::NativeType>(dims: &[usize], data: &[T]) -> Literal {
    let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    Literal::from_vec(&dims, data).unwrap()
}

fn learning_rate(step: usize) -> f32 {
    0.01 * (step + 1) as f32
}

/// The one-step graph's configuration at the test's batch and size.
fn step_config(ctx: &Context) -> StepConfig {
    StepConfig::official(BATCH as i64, SIZE as i64, Precision::F32, ctx.backend())
}

/// The state after training on `batches` with `steps_per_call` steps per call.
fn train(ctx: &Context, model: &Model, batches: &[Batch], steps_per_call: usize) -> Vec<Literal> {
    let cfg = StepConfig {
        steps_per_call: steps_per_call as i64,
        ..step_config(ctx)
    };
    train_with(ctx, model, batches, &cfg, learning_rate).0
}

/// The state after training on `batches` as `cfg` says, at learning rates `rate(step)`, and
/// each step's outcome.
fn train_with(
    ctx: &Context,
    model: &Model,
    batches: &[Batch],
    cfg: &StepConfig,
    rate: fn(usize) -> f32,
) -> (Vec<Literal>, Vec<StepOutcome>) {
    let steps_per_call = cfg.steps_per_call as usize;
    let (exe, _) = ctx.compile(&train_step(model, cfg).unwrap()).unwrap();
    let mut outcomes = Vec::new();
    let layout = StateLayout::new(model);
    let mut state = DeviceState::upload(ctx, &layout, &initial_state(&layout, 3)).unwrap();
    for (call, group) in batches.chunks(steps_per_call).enumerate() {
        let lead: &[usize] = if steps_per_call > 1 {
            &[steps_per_call]
        } else {
            &[]
        };
        let with = |dims: &[usize]| [lead, dims].concat();
        // A short call fills its unused slots with copies of its first batch.
        let slots: Vec<&Batch> = (0..steps_per_call)
            .map(|i| group.get(i).unwrap_or(&group[0]))
            .collect();
        let concat = |part: fn(&Batch) -> &[f32]| -> Vec<f32> {
            slots.iter().flat_map(|b| part(b).iter().copied()).collect()
        };
        let classes: Vec<i32> = slots.iter().flat_map(|b| b.classes.clone()).collect();
        let rates: Vec<f32> = (0..steps_per_call)
            .map(|i| rate(call * steps_per_call + i))
            .collect();
        let steps =
            (steps_per_call > 1).then(|| (port::STEPS, Literal::scalar(group.len() as i32)));
        let feeds = ctx
            .upload_named(
                [
                    (
                        port::IMAGES,
                        literal(&with(&[BATCH, SIZE, SIZE, 3]), &concat(|b| &b.images)),
                    ),
                    (
                        port::LABELS,
                        literal(&with(&[BATCH, CLASSES]), &concat(|b| &b.labels)),
                    ),
                    (port::CLASSES, literal(&with(&[BATCH]), &classes)),
                    (port::LEARNING_RATE, literal(&with(&[]), &rates)),
                    (port::DROPOUT_RATE, Literal::scalar(0.2f32)),
                ]
                .into_iter()
                .chain(steps),
            )
            .unwrap();
        let run = state.step(&exe, std::slice::from_ref(&feeds)).unwrap();
        outcomes.extend(&run[..group.len()]);
    }
    let state = state
        .download()
        .unwrap()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    (state, outcomes)
}

#[test]
fn k_steps_per_call_train_bit_identically_to_k_single_steps() {
    let ctx = Context::open(PluginKind::DEFAULT, None).unwrap();
    let model = Model::new(load_spec("tiny").unwrap()).unwrap();
    assert!(model.spec.dropout > 0.0 && model.spec.survival_prob < 1.0);
    let batches = batches();
    let single = train(&ctx, &model, &batches, 1);
    let looped = train(&ctx, &model, &batches, K);
    let layout = StateLayout::new(&model);
    let mut changed = 0;
    for ((entry, a), b) in layout.entries().iter().zip(&single).zip(&looped) {
        assert!(
            a.bytes() == b.bytes(),
            "{} differs between K single steps and one call of {K}: {:?} vs {:?}",
            entry.name,
            &a.to_f64_vec()[..a.to_f64_vec().len().min(4)],
            &b.to_f64_vec()[..b.to_f64_vec().len().min(4)]
        );
        changed += usize::from(a.bytes() != initial_bytes(&layout, &entry.name));
    }
    assert!(changed > layout.len() / 2, "training changed the state");
}

fn initial_bytes(layout: &StateLayout, name: &str) -> Vec<u8> {
    let i = layout.index_of(name).unwrap();
    initial_state(layout, 3)[i].bytes().to_vec()
}

#[test]
fn a_nonfinite_step_leaves_the_state_as_it_was() {
    let ctx = Context::open(PluginKind::DEFAULT, None).unwrap();
    let model = Model::new(load_spec("tiny").unwrap()).unwrap();
    let layout = StateLayout::new(&model);
    let batches = batches();
    let skipping = StepConfig {
        skip_nonfinite: true,
        ..step_config(&ctx)
    };
    // One step at a NaN learning rate: nothing but the step counter and the key changes.
    let (state, outcomes) = train_with(&ctx, &model, &batches[..1], &skipping, |_| f32::NAN);
    assert!(outcomes[0].loss.is_nan(), "the skipped step reports NaN");
    for (entry, after) in layout.entries().iter().zip(&state) {
        let unchanged = after.bytes() == initial_bytes(&layout, &entry.name);
        let advances = entry.name == "step" || entry.name == "rng";
        assert_eq!(unchanged, !advances, "{}", entry.name);
    }
    // In a loop of 4, the third step's learning rate is infinite: only it is skipped.
    let looped = StepConfig {
        steps_per_call: K as i64,
        ..skipping
    };
    let third_infinite = |step| {
        if step == 2 {
            f32::INFINITY
        } else {
            learning_rate(step)
        }
    };
    let (state, outcomes) = train_with(&ctx, &model, &batches[..K], &looped, third_infinite);
    let finite: Vec<bool> = outcomes.iter().map(|o| o.loss.is_finite()).collect();
    assert_eq!(finite, [true, true, false, true]);
    for (entry, after) in layout.entries().iter().zip(&state) {
        assert!(
            after.to_f64_vec().iter().all(|v| v.is_finite()),
            "{}",
            entry.name
        );
    }
}
