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

/// The CPU plugin built from jaxlib 0.11.2 (PJRT C API 0.115), installed on first use.
pub fn cpu_jax_plugin() -> Arc<Plugin> {
    load(PluginKind::CpuJax)
}

/// Both CPU plugins, oldest first.
pub fn both_plugins() -> [Arc<Plugin>; 2] {
    [cpu_plugin(), cpu_jax_plugin()]
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
