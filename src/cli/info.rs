//! `effnetv2 info`: what a plugin is and what it exposes.

use anyhow::Result;
use clap::Args;
use effnetv2::runtime::PjrtValue;

use super::plugin::PluginArgs;

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    plugin: PluginArgs,
}

impl InfoArgs {
    pub fn run(self) -> Result<()> {
        let ctx = self.plugin.open(Some(1))?;
        let client = ctx.client();
        let plugin = client.plugin();
        let v = plugin.api_version();
        println!("plugin:       {}", plugin.path().display());
        println!("sha256:       {}", plugin.sha256_hex());
        println!("PJRT C API:   {}.{}", v.major, v.minor);
        for (name, value) in plugin.attributes() {
            let text = match value {
                PjrtValue::String(s) => s.clone(),
                PjrtValue::Int64(i) => i.to_string(),
                PjrtValue::Int64List(l) => format!("{l:?}"),
                PjrtValue::Float(f) => f.to_string(),
                PjrtValue::Bool(b) => b.to_string(),
            };
            println!("attribute:    {name} = {text}");
        }
        println!(
            "platform:     {} {}",
            client.platform_name(),
            client.platform_version()
        );
        for d in client.devices() {
            println!(
                "device {:>2}:    {} ({}, process {})",
                d.id(),
                d.kind(),
                d.debug_string(),
                d.process_index()
            );
        }
        Ok(())
    }
}
