//! Shared setup of the runtime tests: the two CPU plugins and small HLO programs.
#![allow(dead_code)] // each test file uses a different subset

use std::sync::Arc;

use effnetv2::hlo::{ArrayShape, Builder, ElementType, Module};
use effnetv2::runtime::provision::{self, PluginKind};
use effnetv2::runtime::{Client, ClientOptions, Plugin};

/// The official CPU plugin (PJRT C API 0.81), installed on first use.
pub fn cpu_plugin() -> Arc<Plugin> {
    load(PluginKind::Cpu)
}

/// The CPU plugin built from jaxlib 0.11.2 (PJRT C API 0.115), installed on first use; `None`
/// (with the reason printed) only when its wheel cannot be fetched, e.g. offline. A plugin that is
/// there but fails to load is still a test failure.
pub fn cpu_jax_plugin() -> Option<Arc<Plugin>> {
    match provision::resolve(PluginKind::CpuJax) {
        Ok(path) => Some(Plugin::load(&path).unwrap_or_else(|e| panic!("{e}"))),
        Err(e) => {
            eprintln!(
                "SKIPPED the PJRT 0.115 CPU plugin checks: its wheel could not be fetched: {e:#}"
            );
            None
        }
    }
}

/// Both CPU plugins, oldest first (only the official one when the second cannot be fetched).
pub fn both_plugins() -> Vec<Arc<Plugin>> {
    std::iter::once(cpu_plugin())
        .chain(cpu_jax_plugin())
        .collect()
}

fn load(kind: PluginKind) -> Arc<Plugin> {
    let path = provision::resolve(kind).unwrap_or_else(|e| panic!("no {kind} plugin: {e:#}"));
    Plugin::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A client with `devices` CPU devices.
pub fn client(plugin: &Arc<Plugin>, devices: i64) -> Client {
    Client::new(
        Arc::clone(plugin),
        &ClientOptions::new().cpu_device_count(devices),
    )
    .unwrap()
}

/// `f(x, y) = (x + y, x * y)` on `f32[2,3]`, with output 0 aliased to parameter 0 when `alias`.
pub fn add_mul_module(alias: bool) -> Module {
    let shape = ArrayShape::new(ElementType::F32, &[2, 3]);
    let mut b = Builder::new("add_mul");
    let x = b.parameter(0, shape.clone(), "x").unwrap();
    let y = b.parameter(1, shape, "y").unwrap();
    let sum = b.add(x, y).unwrap();
    let product = b.mul(x, y).unwrap();
    let root = b.tuple(&[sum, product]).unwrap();
    let mut module = Module::new("add_mul", b.build(root).unwrap());
    if alias {
        module.alias(&[0], 0, &[]).unwrap();
    }
    module
}
