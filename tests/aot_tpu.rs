//! Deviceless compiles for Cloud TPU through libtpu (installed on first use): every graph of the
//! small variant for v5e and v4, the S train step at its last stage for v5e, a 4-chip replicated
//! program, a 2-host slice's placement, and the errors a user meets. No TPU is needed: this is how CI checks what a TPU VM
//! would run.

mod aot_common;

use std::process::Command;
use std::time::Instant;

use aot_common::selection;
use effnetv2::aot::{AotCompiler, ChipRates, GraphReport, Target};
use effnetv2::data::Normalization;
use effnetv2::hlo::{ArrayShape, BinaryOp, Builder, Computation, ElementType, Module};
use effnetv2::model::{load_spec, Model};
use effnetv2::program::executables::ExecutableCache;
use effnetv2::program::graph_plan::{plan_graphs, GraphRole, GraphSelection, PlannedGraph};
use effnetv2::program::placement::Placement;
use effnetv2::runtime::CompileOptions;
use effnetv2::step::agreement_graph::agreement_step;
use effnetv2::step::graphs::{DeviceAugment, InputMode};
use effnetv2::step::state::StateLayout;

fn compiler(target: &str) -> AotCompiler {
    let target: Target = target.parse().unwrap();
    AotCompiler::new(target, None).unwrap_or_else(|e| panic!("{e:#}"))
}

fn model(name: &str) -> Model {
    Model::new(load_spec(name).unwrap()).unwrap()
}

/// The graphs of a run of `model` at batch 128 per device in bf16, as a TPU runs them, train
/// steps data-parallel over `replicas` devices.
fn plan(model: &Model, stage: Option<usize>, eval: bool, replicas: i64) -> Vec<PlannedGraph> {
    plan_graphs(model, &selection(stage, eval, replicas)).unwrap()
}

/// Checks one train- or eval-step report against the model: memory positive and consistent
/// (state donated in place), cost analysis present, train-step FLOPs 2.5-4x the forward pass.
fn check_report(model: &Model, report: &GraphReport) {
    check_report_beside(model, report, 0.0);
}

/// [`check_report`] of a step that also computes `extra_flops` outside the model (augmentation
/// on the device), which the FLOPs ratio leaves out.
fn check_report_beside(model: &Model, report: &GraphReport, extra_flops: f64) {
    let m = &report.cost.memory;
    let what = format!("{}: {report:?}", report.graph);
    assert!(m.peak > 0 && m.arguments > 0 && m.outputs > 0, "{what}");
    assert!(m.temporaries >= 0 && m.aliased >= 0, "{what}");
    assert!(m.fits, "{what}");
    let flops = report.cost.flops.expect("libtpu reports FLOPs");
    let bytes = report
        .cost
        .bytes_accessed
        .expect("libtpu reports bytes accessed");
    assert!(
        bytes > m.arguments as f64,
        "every argument is read at least once: {what}"
    );
    let roofline = report.roofline.expect("an estimate");
    assert!(
        roofline.seconds > 0.0 && roofline.mfu > 0.0 && roofline.mfu <= 1.0,
        "{what}"
    );
    let forward = 2.0 * model.macs(report.image_size).total() as f64 * report.batch as f64;
    match &report.role {
        GraphRole::Train { .. } => {
            let state = StateLayout::new(model).byte_size() as i64;
            assert!(m.arguments >= state, "arguments hold the state: {what}");
            assert!(m.aliased >= state, "the donated state is aliased: {what}");
            assert!(m.aliased <= m.arguments && m.aliased <= m.outputs, "{what}");
            let ratio = (flops - extra_flops) / forward;
            assert!(
                (2.5..=4.0).contains(&ratio),
                "train-step FLOPs are {ratio:.2}x the forward pass: {what}"
            );
        }
        GraphRole::Eval => {
            assert_eq!(m.aliased, 0, "the eval step donates nothing: {what}");
            let ratio = (flops - extra_flops) / forward;
            assert!(
                (0.9..=1.5).contains(&ratio),
                "eval FLOPs {ratio:.2}x forward: {what}"
            );
        }
    }
}

/// Every graph of the small variant's run (four stage sizes and the eval step) for `target`,
/// stored in a fresh executable cache under the key `train` would look up.
fn compile_every_tiny_graph(target: &str) {
    let compiler = compiler(target);
    let model = model("tiny");
    let graphs = plan(&model, None, true, 1);
    assert_eq!(graphs.len(), 5);
    let dir = tempfile::tempdir().unwrap();
    let cache = ExecutableCache::new(Some(dir.path().to_path_buf()));
    for graph in &graphs {
        let report = compiler
            .report(&model, graph, Some(&cache))
            .unwrap_or_else(|e| panic!("{e:#}"));
        check_report(&model, &report);
        let key = compiler
            .cache_key(
                &graph.build(&model).unwrap().module,
                &CompileOptions::default(),
            )
            .unwrap();
        let stored = std::fs::metadata(dir.path().join(format!("{key}.pjrt"))).unwrap();
        assert_eq!(stored.len() as usize, report.serialized_bytes);
    }
}

#[test]
fn every_graph_of_the_small_variant_compiles_for_a_v5e_chip() {
    compile_every_tiny_graph("tpu:v5e");
}

#[test]
fn every_graph_of_the_small_variant_compiles_for_a_v4_chip() {
    compile_every_tiny_graph("tpu:v4");
}

#[test]
fn the_s_train_step_at_its_last_stage_fits_a_v5e_chip() {
    let compiler = compiler("tpu:v5e");
    let model = model("s");
    let graphs = plan(&model, Some(model.spec.progressive.stages - 1), false, 1);
    let start = Instant::now();
    let report = compiler
        .report(&model, &graphs[0], None)
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!(
        "S train step, {} px, batch 128, v5e: {:.0} s to compile, {:.2} TFLOP, {:.1} GB accessed, \
         peak {:.2} GiB, estimated {:.0} ms",
        report.image_size,
        start.elapsed().as_secs_f64(),
        report.cost.flops.unwrap_or(0.0) / 1e12,
        report.cost.bytes_accessed.unwrap_or(0.0) / 1e9,
        report.cost.memory.peak as f64 / (1u64 << 30) as f64,
        report.roofline.map_or(0.0, |r| r.seconds * 1e3),
    );
    assert_eq!(report.image_size, 300);
    check_report(&model, &report);
}

#[test]
fn a_four_chip_replicated_all_reduce_compiles_for_a_v5e_2x2_slice() {
    let compiler = compiler("tpu:v5e:2x2");
    assert_eq!(compiler.topology().devices().len(), 4);
    let shape = ArrayShape::new(ElementType::F32, &[1024]);
    let mut b = Builder::new("gradient_mean");
    let x = b.parameter(0, shape.clone(), "gradient").unwrap();
    let sum = Computation::binary_reducer(BinaryOp::Add, ElementType::F32).unwrap();
    let total = b.all_reduce(x, &[vec![0, 1, 2, 3]], &sum).unwrap();
    let quarter = b.full(&shape, 0.25).unwrap();
    let mean = b.mul(total, quarter).unwrap();
    let module = Module::new("gradient_mean", b.build(mean).unwrap());
    let compiled = compiler
        .compile(&module, &CompileOptions::replicated(4))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let exe = &compiled.executable;
    assert_eq!(
        (exe.num_replicas().unwrap(), exe.num_partitions().unwrap()),
        (4, 1)
    );
    let memory = exe.compiled_memory_stats().unwrap();
    assert_eq!(
        memory.argument_size_in_bytes, 4096,
        "per device: one f32[1024]"
    );
    let cost = exe
        .cost_analysis()
        .unwrap()
        .expect("libtpu has a cost analysis");
    assert!(cost.flops().unwrap() >= 1024.0, "{cost:?}");
}

#[test]
fn a_data_parallel_train_step_compiles_for_every_chip_of_a_v5e_2x2_slice() {
    let slice = compiler("tpu:v5e:2x2");
    let model = model("tiny");
    let graphs = plan(&model, Some(0), false, 4);
    let report = slice
        .report(&model, &graphs[0], None)
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!((report.devices, report.batch), (4, 128));
    assert_eq!(report.graph, "train_step_16px_b128x4");
    check_report(&model, &report);
    let one_chip = compiler("tpu:v5e")
        .report(&model, &plan(&model, Some(0), false, 1)[0], None)
        .unwrap();
    // Per device, the replicated step does the one-chip step's work plus the all-reduces.
    let ratio = report.cost.flops.unwrap() / one_chip.cost.flops.unwrap();
    assert!(
        (1.0..1.1).contains(&ratio),
        "FLOPs per device {ratio:.3}x one chip's"
    );
}

#[test]
fn a_two_host_v4_slice_gives_each_host_consecutive_replicas_and_compiles_the_start_check() {
    let slice = compiler("tpu:v4:2x2x2");
    let devices = slice.topology().devices();
    assert_eq!(devices.len(), 16, "8 chips of 2 TensorCores");
    let mut ids: Vec<i64> = devices.iter().map(|d| i64::from(d.id)).collect();
    ids.sort_unstable();
    let owner = |id: i64| {
        devices
            .iter()
            .find(|d| i64::from(d.id) == id)
            .map(|d| d.process_index as usize)
    };
    for host in 0..2 {
        let placement = Placement::new(&ids, owner, host, 2).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(placement.local_replicas(), 8 * host..8 * (host + 1));
        assert_eq!(placement.is_primary(), host == 0);
    }
    let check = agreement_step(16, 3).unwrap();
    let compiled = slice
        .compile(&check.module, &CompileOptions::replicated(16))
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(compiled.executable.num_replicas().unwrap(), 16);
}

#[test]
fn a_train_step_looping_over_k_batches_compiles_for_a_v5e_chip() {
    // `train` runs 8 steps per call by default: the while loop over stacked batches (with its
    // runtime step count) must compile for the TPU too.
    let chip = compiler("tpu:v5e");
    let model = model("tiny");
    let one = &plan(&model, Some(0), false, 1)[0];
    let looped = GraphSelection {
        steps_per_call: 8,
        ..selection(Some(0), false, 1)
    };
    let looped = &plan_graphs(&model, &looped).unwrap()[0];
    let report = chip
        .report(&model, looped, None)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let single = chip.report(&model, one, None).unwrap();
    let (m, m1) = (&report.cost.memory, &single.cost.memory);
    assert!(m.fits, "{report:?}");
    // The stacked inputs: 7 more batches of 128 images of 16 x 16 x 3 f32, labels and classes
    // (TPU layouts tile and pad the small ones, so the sizes are not exact).
    let images = 7 * 128 * 16 * 16 * 3 * 4;
    let extra = m.arguments - m1.arguments;
    assert!(
        (images..images * 11 / 10).contains(&extra),
        "{extra} more argument bytes for 7 more batches"
    );
    assert_eq!(
        m.aliased, m1.aliased,
        "the state is donated in place in both"
    );
}

#[test]
fn a_train_step_augmenting_on_the_device_compiles_for_a_v5e_chip() {
    // `--augment-on device`: u8 images, RandAugment's four stages (one-hot products),
    // normalisation and mixing in the step must compile for the TPU too.
    let chip = compiler("tpu:v5e");
    let model = model("tiny");
    let host = &plan(&model, Some(0), false, 1)[0];
    let on_device = GraphSelection {
        input: InputMode::DeviceAugment(DeviceAugment::new(2, true, Normalization::CENTRED)),
        ..selection(Some(0), false, 1)
    };
    let on_device = &plan_graphs(&model, &on_device).unwrap()[0];
    let report = chip
        .report(&model, on_device, None)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let single = chip.report(&model, host, None).unwrap();
    check_report(&model, &single);
    // The augmentation's matrix products (the warp's two passes, the table look-ups) add FLOPs
    // of their own; at 16 px, against tiny's small forward pass, a fraction of the step.
    let (flops, host_flops) = (report.cost.flops.unwrap(), single.cost.flops.unwrap());
    assert!(
        host_flops < flops && flops < 1.5 * host_flops,
        "{flops} FLOPs augmenting on the device against {host_flops}"
    );
    check_report_beside(&model, &report, flops - host_flops);
    assert_eq!(
        report.cost.memory.aliased, single.cost.memory.aliased,
        "the state is donated in place in both"
    );
}

#[test]
fn a_topology_libtpu_rejects_is_named_in_the_error() {
    let target: Target = "tpu:v5e:3x3".parse().unwrap();
    let err = format!("{:#}", AotCompiler::new(target, None).err().unwrap());
    assert!(
        err.contains("target tpu:v5e:3x3: the tpu plugin rejected topology `v5e:3x3`"),
        "{err}"
    );
}

fn effnetv2(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn without_a_tpu_running_on_one_fails_at_once_with_a_clear_error() {
    if std::path::Path::new("/dev/accel0").exists() || std::path::Path::new("/dev/vfio/0").exists()
    {
        eprintln!("SKIPPED: this machine has a TPU");
        return;
    }
    let run = tempfile::tempdir().unwrap();
    let out = run.path().join("run");
    for args in [
        &["info", "--plugin", "tpu"][..],
        &["train", "--plugin", "tpu", "--out", out.to_str().unwrap()],
    ] {
        let start = Instant::now();
        let out = effnetv2(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(stderr.contains("no TPU device"), "{args:?}: {stderr}");
        assert!(
            start.elapsed().as_secs() < 10,
            "{args:?} took {:?}",
            start.elapsed()
        );
    }
    assert!(!out.exists(), "nothing was written");
}

#[test]
fn a_flag_libtpu_does_not_know_is_shown_although_libtpu_ends_the_process() {
    // libtpu reads LIBTPU_INIT_ARGS while it initializes, with its output going to plugin.log,
    // and exits on a flag it does not know: its message must still reach the terminal.
    let out = Command::new(env!("CARGO_BIN_EXE_effnetv2"))
        .args([
            "compile", "--target", "tpu:v5e", "--model", "tiny", "--stage", "0",
        ])
        .env("LIBTPU_INIT_ARGS", "--effnetv2_no_such_flag=1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Unknown command line flag 'effnetv2_no_such_flag'"),
        "{stderr}"
    );
}

#[test]
fn the_compile_command_prints_json_for_one_stage() {
    let cache = tempfile::tempdir().unwrap();
    let args = [
        "compile",
        "--target",
        "tpu:v5e",
        "--model",
        "tiny",
        "--stage",
        "0",
        "--json",
        "--cache-dir",
        cache.path().to_str().unwrap(),
    ];
    let out = effnetv2(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["target"], "tpu:v5e:1x1");
    assert_eq!(report["device_kind"], "TPU v5 lite");
    assert_eq!(report["device"]["hbm_bytes"], 16u64 << 30);
    let graph = &report["graphs"][0];
    assert_eq!(graph["graph"], "train_step_16px_b128");
    assert_eq!(graph["role"]["stages"][0], 0);
    assert!(graph["memory"]["peak"].as_i64().unwrap() > 0);
    assert!(graph["roofline"]["seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(graph["cached"], false);
    let mut stored: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored[0].ends_with(".pjrt") && stored[1] == stored[0].replace(".pjrt", ".report.json"),
        "the executable and its report: {stored:?}"
    );
    // Asked again, the report comes from the cache: the same figures, no compile.
    let again = effnetv2(&args);
    assert!(again.status.success(), "{again:?}");
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    let cached = &again["graphs"][0];
    assert_eq!(cached["cached"], true);
    for field in [
        "memory",
        "flops",
        "bytes_accessed",
        "examples_per_second",
        "compile_seconds",
    ] {
        assert_eq!(cached[field], graph[field], "{field}");
    }
    // The document is what `bench --target-costs` reads: the per-chip rate of stage 0.
    let rates = ChipRates::from_compile_json(&stdout, "compile output").unwrap();
    let rate = rates.for_size(16).unwrap();
    assert_eq!(
        rate.images_per_second,
        graph["examples_per_second"].as_f64(),
        "one chip: the graph's rate"
    );
}

#[test]
fn an_hlo_file_compiles_to_the_cost_of_the_same_graph() {
    // The proto `dump` writes is what `compile --hlo` takes (as it takes a JAX program's):
    // compiled for the same chip, it costs exactly what `compile` reports for the graph.
    let dir = tempfile::tempdir().unwrap();
    let graph_args = ["--model", "tiny", "--stage", "0"];
    let dumped = effnetv2(
        &[
            &["dump", "--out", dir.path().to_str().unwrap()][..],
            &graph_args,
        ]
        .concat(),
    );
    assert!(dumped.status.success(), "{dumped:?}");
    let json = |args: &[&str]| -> serde_json::Value {
        let out = effnetv2(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let proto = dir.path().join("train_step_16px_b128.hlo.pb");
    let from_file = json(&[
        "compile",
        "--target",
        "tpu:v5e",
        "--hlo",
        proto.to_str().unwrap(),
        "--json",
    ]);
    let planned = json(
        &[
            &["compile", "--target", "tpu:v5e", "--json", "--no-cache"][..],
            &graph_args,
        ]
        .concat(),
    );
    let graph = &planned["graphs"][0];
    for field in ["flops", "bytes_accessed", "transcendentals"] {
        assert_eq!(from_file[field], graph[field], "{field}");
    }
    assert_eq!(from_file["memory"], graph["memory"]);
    let missing = effnetv2(&["compile", "--target", "tpu:v5e", "--hlo", "/nonexistent.pb"]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("--hlo /nonexistent.pb: cannot read the file"),
        "{stderr}"
    );
}

#[test]
fn dump_with_a_target_writes_the_hlo_libtpu_optimized() {
    let out = tempfile::tempdir().unwrap();
    let done = effnetv2(&[
        "dump",
        "--model",
        "tiny",
        "--stage",
        "0",
        "--optimized",
        "--target",
        "tpu:v5e",
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert!(done.status.success(), "{done:?}");
    let optimized =
        std::fs::read_to_string(out.path().join("train_step_16px_b128.optimized.hlo.txt")).unwrap();
    assert!(optimized.starts_with("HloModule train_step_16px_b128, is_scheduled=true"));
    assert!(
        optimized.contains("fusion"),
        "TPU fusions in the optimized module"
    );
}

#[test]
fn bench_with_a_target_compiles_for_one_chip_once_and_reads_the_cache_after() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("photos");
    std::fs::create_dir(&class).unwrap();
    for k in 0..2u32 {
        image::RgbImage::from_fn(60, 40 + k, |x, y| {
            image::Rgb([x as u8 * 4, y as u8 * 6, 90])
        })
        .save(class.join(format!("{k}.jpg")))
        .unwrap();
    }
    let args = [
        "bench",
        "--data",
        dir.path().to_str().unwrap(),
        "--model",
        "tiny",
        "--images",
        "4",
        "--target",
        "tpu:v6e:2x4",
    ];
    let first = effnetv2(&args);
    assert!(first.status.success(), "{first:?}");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains("target tpu:v6e:2x4: 1 x ct6e-standard-8t")
            && stdout.contains("by the roofline of tpu:v6e:1x1"),
        "{stdout}"
    );
    // The executable cache (the user's, as `train` uses it) now holds every stage's report.
    let second = effnetv2(&args);
    assert!(second.status.success(), "{second:?}");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        stderr.matches("from the cache").count(),
        4,
        "tiny's four train steps, none compiled again: {stderr}"
    );
}
