//! Deviceless compiles for NVIDIA GPUs through the CUDA plugin (installed on first use, with the
//! CUDA compiler tools it runs): the small variant's last-stage train step and its eval step for
//! an H100, and S's train step at its last stage, as CI checks what a GPU machine would run. The
//! plugin reports memory but no costs.

mod aot_common;

use aot_common::selection;
use effnetv2::aot::{AotCompiler, Target};
use effnetv2::model::{load_spec, Model};
use effnetv2::program::executables::ExecutableCache;
use effnetv2::program::graph_plan::{plan_graphs, GraphRole};
use effnetv2::step::state::StateLayout;

#[test]
fn the_small_variants_last_train_step_and_eval_step_compile_for_an_h100() {
    let target: Target = "cuda:h100".parse().unwrap();
    let compiler = AotCompiler::new(target, None).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(
        compiler.topology().devices()[0].kind,
        "NVIDIA H100 80GB HBM3",
        "the device kind a client on an H100 reports, so `train` there finds these executables"
    );
    let model = Model::new(load_spec("tiny").unwrap()).unwrap();
    let graphs = plan_graphs(&model, &selection(Some(3), true, 1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = ExecutableCache::new(Some(dir.path().to_path_buf()));
    let state = StateLayout::new(&model).byte_size() as i64;
    for graph in &graphs {
        let report = compiler
            .report(&model, graph, Some(&cache))
            .unwrap_or_else(|e| panic!("{e:#}"));
        let m = &report.cost.memory;
        let what = format!("{report:?}");
        assert!(
            m.fits && m.peak > 0 && m.arguments > 0 && m.outputs > 0,
            "{what}"
        );
        assert!(report.serialized_bytes > 0, "{what}");
        assert_eq!(
            report.cost.flops, None,
            "the CUDA plugin has no cost analysis"
        );
        match graph.role {
            GraphRole::Train { .. } => {
                assert!(m.arguments >= state && m.aliased >= state, "{what}");
            }
            GraphRole::Eval => assert_eq!(m.aliased, 0, "{what}"),
        }
    }
    // Each graph's executable and, beside it, its compile report.
    let mut stored: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    stored.sort();
    let executables: Vec<&String> = stored.iter().filter(|n| n.ends_with(".pjrt")).collect();
    assert_eq!(executables.len(), 2, "{stored:?}");
    for executable in executables {
        let report = executable.replace(".pjrt", ".report.json");
        assert!(stored.contains(&report), "{report} missing: {stored:?}");
    }
    assert_eq!(stored.len(), 4, "{stored:?}");
}

#[test]
fn the_s_train_step_at_its_last_stage_fits_an_h100() {
    let compiler = AotCompiler::new("cuda:h100".parse().unwrap(), None).unwrap();
    let model = Model::new(load_spec("s").unwrap()).unwrap();
    let last = model.spec.progressive.stages - 1;
    let graph = plan_graphs(&model, &selection(Some(last), false, 1))
        .unwrap()
        .remove(0);
    let report = compiler
        .report(&model, &graph, None)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let m = &report.cost.memory;
    eprintln!(
        "S train step, 300 px, batch 128, H100: {:.0} s to compile, peak {:.2} GiB",
        report.compile_seconds,
        m.peak as f64 / (1u64 << 30) as f64
    );
    assert_eq!(report.image_size, 300);
    let state = StateLayout::new(&model).byte_size() as i64;
    assert!(m.fits && m.aliased >= state, "{report:?}");
}
