//! Compiling and executing HLO built with `effnetv2::hlo`: outputs, donation, several devices,
//! serialization, and errors from the plugin.

mod runtime_common;

use std::sync::Arc;

use effnetv2::hlo::{ArrayShape, BinaryOp, Builder, Computation, ElementType, Literal, Module};
use effnetv2::runtime::{
    Arg, Buffer, Client, CompileOptions, DeviceAssignment, ErrorCode, OptionOverride, Plugin,
    RuntimeError,
};
use runtime_common::{add_mul_module, both_plugins, client, cpu_plugin};

const X: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
const Y: [f32; 6] = [0.5, -1.0, 2.0, 0.0, 10.0, -3.0];
const X_PLUS_Y: [f32; 6] = [1.5, 1.0, 5.0, 4.0, 15.0, 3.0];
const X_TIMES_Y: [f32; 6] = [0.5, -2.0, 6.0, 0.0, 50.0, -18.0];

fn upload(client: &Client, values: &[f32], device: usize) -> Buffer {
    let literal = Literal::from_vec(&[2, 3], values).unwrap();
    client
        .buffer_from_literal(&literal, &client.addressable_devices()[device])
        .unwrap()
}

fn values(buffer: &Buffer) -> Vec<f32> {
    buffer.to_literal().unwrap().to_vec().unwrap()
}

#[test]
fn a_tuple_result_comes_back_as_separate_buffers_on_both_plugins() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let executable = client
            .compile_module(&add_mul_module(false), &CompileOptions::default())
            .unwrap();
        assert_eq!(
            (
                executable.num_outputs(),
                executable.num_replicas(),
                executable.num_partitions()
            ),
            (2, 1, 1)
        );
        assert_eq!(executable.addressable_devices().len(), 1);
        let (x, y) = (upload(&client, &X, 0), upload(&client, &Y, 0));
        let outputs = executable
            .execute(vec![Arg::Borrowed(&x), Arg::Borrowed(&y)])
            .unwrap();
        assert_eq!(outputs.len(), 2);
        assert_eq!(values(&outputs[0]), X_PLUS_Y);
        assert_eq!(values(&outputs[1]), X_TIMES_Y);
        assert_eq!(
            outputs[0].shape().unwrap(),
            ArrayShape::new(ElementType::F32, &[2, 3])
        );
    }
}

#[test]
fn a_donated_argument_becomes_the_aliased_output() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let executable = client
            .compile_module(&add_mul_module(true), &CompileOptions::default())
            .unwrap();
        let stats = executable.compiled_memory_stats().unwrap();
        let sizes = (stats.argument_size_in_bytes, stats.alias_size_in_bytes);
        assert_eq!(sizes, (48, 24), "two f32[2,3] arguments, one aliased");
        let (x, y) = (upload(&client, &X, 0), upload(&client, &Y, 0));
        let x_address = x.opaque_device_address().unwrap();
        let outputs = executable.execute(vec![x.into(), (&y).into()]).unwrap();
        assert_eq!(values(&outputs[0]), X_PLUS_Y);
        assert_eq!(values(&outputs[1]), X_TIMES_Y);
        assert_eq!(
            outputs[0].opaque_device_address().unwrap(),
            x_address,
            "x's memory now holds x + y"
        );
        assert_eq!(values(&y), Y);
    }
}

#[test]
fn a_borrowed_argument_at_an_aliased_position_is_not_consumed() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let executable = client
            .compile_module(&add_mul_module(true), &CompileOptions::default())
            .unwrap();
        let (x, y) = (upload(&client, &X, 0), upload(&client, &Y, 0));
        for _ in 0..2 {
            let outputs = executable.execute(vec![(&x).into(), (&y).into()]).unwrap();
            assert_eq!(values(&outputs[0]), X_PLUS_Y);
            assert_ne!(
                outputs[0].opaque_device_address().unwrap(),
                x.opaque_device_address().unwrap()
            );
            assert_eq!(values(&x), X, "x is intact after the run");
        }
    }
}

/// `all-reduce(x, sum)` over replicas {0, 1}.
fn all_reduce_sum_module() -> Module {
    let mut b = Builder::new("all_reduce_sum");
    let x = b
        .parameter(0, ArrayShape::new(ElementType::F32, &[2, 3]), "x")
        .unwrap();
    let sum = Computation::binary_reducer(BinaryOp::Add, ElementType::F32).unwrap();
    let reduced = b.all_reduce(x, &[vec![0, 1]], &sum).unwrap();
    Module::new("all_reduce_sum", b.build(reduced).unwrap())
}

#[test]
fn two_replicas_on_two_cpu_devices_sum_across_devices() {
    for plugin in both_plugins() {
        let client = client(&plugin, 2);
        let options = CompileOptions::replicated(2);
        let executable = client
            .compile_module(&all_reduce_sum_module(), &options)
            .unwrap();
        assert_eq!(executable.num_replicas(), 2);
        let devices: Vec<i32> = executable
            .addressable_devices()
            .iter()
            .map(|d| d.id())
            .collect();
        assert_eq!(devices, [0, 1]);
        let (a, b) = (upload(&client, &X, 0), upload(&client, &Y, 1));
        let outputs = executable
            .execute_replicated(vec![vec![a.into()], vec![(&b).into()]])
            .unwrap();
        assert_eq!(outputs.len(), 2);
        for (d, device_outputs) in outputs.iter().enumerate() {
            assert_eq!(device_outputs.len(), 1);
            assert_eq!(device_outputs[0].device().unwrap().id(), d as i32);
            assert_eq!(values(&device_outputs[0]), X_PLUS_Y);
        }
        let err = executable.execute(vec![(&b).into()]).unwrap_err();
        assert!(err.to_string().contains("runs on 2 devices"), "{err}");
    }
}

#[test]
fn an_explicit_device_assignment_places_the_replicas() {
    let client = client(&cpu_plugin(), 2);
    let options = CompileOptions {
        num_replicas: 2,
        device_assignment: Some(DeviceAssignment::replicas(&[1, 0]).unwrap()),
        ..CompileOptions::default()
    };
    let executable = client
        .compile_module(&all_reduce_sum_module(), &options)
        .unwrap();
    let devices: Vec<i32> = executable
        .addressable_devices()
        .iter()
        .map(|d| d.id())
        .collect();
    assert_eq!(devices, [1, 0]);
    let (a, b) = (upload(&client, &X, 1), upload(&client, &Y, 0));
    let outputs = executable
        .execute_replicated(vec![vec![(&a).into()], vec![(&b).into()]])
        .unwrap();
    assert_eq!(outputs[0][0].device().unwrap().id(), 1);
    assert_eq!(values(&outputs[1][0]), X_PLUS_Y);
}

#[test]
fn a_serialized_executable_reloads_and_computes_the_same() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let executable = client
            .compile_module(&add_mul_module(false), &CompileOptions::default())
            .unwrap();
        let blob = executable.serialize().unwrap();
        assert!(!blob.is_empty());
        drop(executable);
        for options in [None, Some(&CompileOptions::default())] {
            let reloaded = client.deserialize_executable(&blob, options).unwrap();
            assert_eq!(reloaded.num_outputs(), 2);
            let (x, y) = (upload(&client, &X, 0), upload(&client, &Y, 0));
            let outputs = reloaded.execute(vec![(&x).into(), (&y).into()]).unwrap();
            assert_eq!(values(&outputs[1]), X_TIMES_Y);
        }
        let err = client
            .deserialize_executable(b"not an executable", None)
            .unwrap_err();
        assert!(err.code().is_some(), "a PJRT error: {err}");
    }
}

#[test]
fn the_optimized_program_is_xla_hlo_with_config() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let executable = client
            .compile_module(&add_mul_module(false), &CompileOptions::default())
            .unwrap();
        let program = executable.optimized_program().unwrap();
        assert_eq!(program.format, "hlo_with_config");
        // The module name survives optimization; it is a string field inside the proto.
        let text = String::from_utf8_lossy(&program.code);
        assert!(text.contains("add_mul"), "{} bytes", program.code.len());
    }
}

#[test]
fn env_option_overrides_reach_xla() {
    let dump_dir =
        std::env::temp_dir().join(format!("effnetv2-runtime-dump-{}", std::process::id()));
    let client = client(&cpu_plugin(), 1);
    let options = CompileOptions::default()
        .with_override(
            "xla_dump_to",
            OptionOverride::String(dump_dir.display().to_string()),
        )
        .with_override("xla_dump_hlo_as_text", OptionOverride::Bool(true));
    client
        .compile_module(&add_mul_module(false), &options)
        .unwrap();
    let dumped: Vec<String> = std::fs::read_dir(&dump_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    std::fs::remove_dir_all(&dump_dir).unwrap();
    assert!(
        dumped
            .iter()
            .any(|name| name.ends_with("add_mul.before_optimizations.txt")),
        "{dumped:?}"
    );
}

#[test]
fn errors_from_the_plugin_carry_code_and_message() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let err = client.compile(
            b"HloModule m\nENTRY e { ROOT p = f32[] parameter(0) }",
            &CompileOptions::default(),
        );
        let err = err.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::InvalidArgument), "{err}");
        assert!(err.to_string().contains("PJRT_Client_Compile"), "{err}");
        assert!(
            err.to_string()
                .contains("failed to deserialize HloModuleProto"),
            "{err}"
        );

        // An argument of the wrong shape is refused at execute time.
        let executable = client
            .compile_module(&add_mul_module(false), &CompileOptions::default())
            .unwrap();
        let wrong = client
            .buffer_from_literal(
                &Literal::from_vec(&[3], &[1.0f32, 2.0, 3.0]).unwrap(),
                &client.addressable_devices()[0],
            )
            .unwrap();
        let y = upload(&client, &Y, 0);
        let err = executable
            .execute(vec![(&wrong).into(), (&y).into()])
            .unwrap_err();
        assert!(err.code().is_some(), "{err}");
        assert!(
            err.to_string().contains("PJRT_LoadedExecutable_Execute"),
            "{err}"
        );
    }
}

#[test]
fn zero_replicas_are_refused_without_reaching_the_plugin() {
    let client = client(&cpu_plugin(), 1);
    let err = client
        .compile_module(&add_mul_module(false), &CompileOptions::replicated(0))
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
}

#[test]
fn argument_lists_are_checked_before_the_plugin() {
    let plugin: Arc<Plugin> = cpu_plugin();
    let client_a = client(&plugin, 1);
    let client_b = client(&plugin, 1);
    let executable = client_a
        .compile_module(&add_mul_module(false), &CompileOptions::default())
        .unwrap();
    let x = upload(&client_a, &X, 0);
    let foreign = upload(&client_b, &Y, 0);
    let err = executable
        .execute(vec![(&x).into(), (&foreign).into()])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("argument 1 of list 0 is a buffer of another client"),
        "{err}"
    );
    let err = executable
        .execute_replicated(vec![vec![(&x).into()], vec![(&x).into()]])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("runs on 1 devices but 2 argument lists"),
        "{err}"
    );
}
