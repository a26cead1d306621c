//! Creating clients with create options on both CPU plugins.

mod runtime_common;

use std::sync::Arc;

use effnetv2::runtime::{Client, ClientOptions, ErrorCode, PjrtValue};
use runtime_common::{both_plugins, client, cpu_jax_plugin, cpu_plugin};

#[test]
fn cpu_device_count_sets_the_number_of_devices() {
    for plugin in both_plugins() {
        for count in [1, 2] {
            let client = client(&plugin, count);
            assert_eq!(client.platform_name(), "cpu");
            assert_eq!(
                client.devices().len(),
                count as usize,
                "{}",
                plugin.path().display()
            );
            assert_eq!(client.addressable_devices().len(), count as usize);
            let ids: Vec<i32> = client
                .addressable_devices()
                .iter()
                .map(|d| d.id())
                .collect();
            assert_eq!(ids, (0..count as i32).collect::<Vec<_>>());
            for device in client.devices() {
                assert_eq!(device.kind(), "cpu");
                assert_eq!(device.process_index(), 0);
                assert!(!device.debug_string().is_empty());
            }
        }
    }
}

#[test]
fn one_process_owns_every_device_and_places_replicas_in_device_order() {
    for plugin in both_plugins() {
        let client = client(&plugin, 4);
        assert_eq!(client.process_index(), 0);
        assert_eq!(client.process_count(), 1);
        for replicas in [1, 2, 4] {
            assert_eq!(
                client.default_device_assignment(replicas).unwrap(),
                (0..replicas as i64).collect::<Vec<_>>(),
                "{}",
                plugin.path().display()
            );
        }
        assert!(client.default_device_assignment(0).is_err());
    }
}

#[test]
fn the_newer_plugin_rejects_an_unknown_option_with_its_code_and_message() {
    let Some(jax) = cpu_jax_plugin() else { return };
    let options = ClientOptions::new().set("no_such_option", PjrtValue::Bool(true));
    let err = Client::new(jax, &options).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidArgument), "{err}");
    let message = err.to_string();
    assert!(message.contains("PJRT_Client_Create"), "{message}");
    assert!(message.contains("no_such_option"), "{message}");
    // The 0.81 plugin ignores unknown names (lab fact): the option list still reaches it intact.
    let client = Client::new(cpu_plugin(), &options.cpu_device_count(3)).unwrap();
    assert_eq!(client.devices().len(), 3);
}

#[test]
fn options_of_every_value_type_reach_the_plugin() {
    // Options both plugins know, of the two types they take: int64 and bool.
    let options = ClientOptions::new()
        .cpu_device_count(2)
        .set("asynchronous", PjrtValue::Bool(false));
    for plugin in both_plugins() {
        let client = Client::new(Arc::clone(&plugin), &options).unwrap();
        assert_eq!(client.devices().len(), 2);
    }
    // A wrongly typed value is rejected by the 0.115 plugin, which proves the type tag arrives.
    let Some(jax) = cpu_jax_plugin() else { return };
    let wrong = ClientOptions::new().set("cpu_device_count", PjrtValue::String("2".into()));
    let err = Client::new(jax, &wrong).unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidArgument), "{err}");
    assert!(
        err.to_string()
            .contains("name cpu_device_count has type index 0"),
        "{err}"
    );
}

#[test]
fn set_replaces_an_earlier_value_of_the_same_name() {
    let options = ClientOptions::new().cpu_device_count(4).cpu_device_count(2);
    assert_eq!(
        options.values(),
        &[("cpu_device_count".to_string(), PjrtValue::Int64(2))]
    );
    assert_eq!(client_with(&options).devices().len(), 2);
}

fn client_with(options: &ClientOptions) -> Client {
    Client::new(cpu_plugin(), options).unwrap()
}
