//! Host <-> device transfers for every element type, on both CPU plugins.

mod runtime_common;

use effnetv2::hlo::{ArrayShape, ElementType, Literal, NativeType};
use effnetv2::runtime::{Client, RuntimeError};
use half::{bf16, f16};
use runtime_common::{both_plugins, client, cpu_plugin};

/// Sends `values` to the device and back; returns the element type it checked.
fn round_trip<T: NativeType>(client: &Client, dims: &[i64], values: &[T]) -> ElementType {
    let literal = Literal::from_vec(dims, values).unwrap();
    let device = &client.addressable_devices()[0];
    let buffer = client.buffer_from_literal(&literal, device).unwrap();
    assert_eq!(buffer.element_type().unwrap(), T::TYPE);
    assert_eq!(buffer.dims().unwrap(), dims);
    assert_eq!(buffer.shape().unwrap(), ArrayShape::new(T::TYPE, dims));
    let back = buffer.to_literal().unwrap();
    assert_eq!(
        back.to_vec::<T>().unwrap(),
        values,
        "{} round trip",
        T::TYPE
    );
    assert_eq!(back.shape(), literal.shape());
    T::TYPE
}

#[test]
fn every_element_type_round_trips_on_both_plugins() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        let mut tested = vec![
            round_trip(&client, &[2, 3], &[true, false, false, true, true, false]),
            round_trip(&client, &[5], &[i8::MIN, -1, 0, 1, i8::MAX]),
            round_trip(&client, &[2, 2], &[i32::MIN, -7, 65_536, i32::MAX]),
            round_trip(&client, &[3], &[i64::MIN, -1 << 40, i64::MAX]),
            round_trip(&client, &[4], &[0u8, 1, 128, 255]),
            round_trip(&client, &[2], &[u32::MAX, 1 << 31]),
            round_trip(&client, &[2], &[u64::MAX, 1 << 63]),
            round_trip(
                &client,
                &[3],
                &[f16::from_f32(-1.5), f16::MAX, f16::MIN_POSITIVE_SUBNORMAL],
            ),
            round_trip(
                &client,
                &[3],
                &[bf16::from_f32(3.140625), bf16::MIN, bf16::from_f32(-0.0)],
            ),
            round_trip(
                &client,
                &[2, 1, 2],
                &[1.5f32, -0.25, f32::MAX, f32::MIN_POSITIVE],
            ),
            round_trip(&client, &[2], &[std::f64::consts::PI, -1e300]),
        ];
        tested.sort();
        let mut all = ElementType::ALL.to_vec();
        all.sort();
        assert_eq!(tested, all, "every element type is covered");
    }
}

#[test]
fn scalars_and_empty_arrays_round_trip() {
    let client = client(&cpu_plugin(), 1);
    round_trip(&client, &[], &[42i32]);
    round_trip::<f32>(&client, &[0, 3], &[]);
}

#[test]
fn host_data_in_a_column_major_layout_reads_back_row_major() {
    for plugin in both_plugins() {
        let client = client(&plugin, 1);
        // A[i][j] = 10 i + j for a 2x3 array, stored column by column.
        let shape = ArrayShape::with_layout(ElementType::S32, &[2, 3], &[0, 1]).unwrap();
        let column_major = effnetv2::hlo::element::to_bytes(&[0i32, 10, 1, 11, 2, 12]);
        let buffer = client
            .buffer_from_bytes(&column_major, &shape, &client.addressable_devices()[0])
            .unwrap();
        assert_eq!(
            buffer.to_literal().unwrap().to_vec::<i32>().unwrap(),
            [0, 1, 2, 10, 11, 12]
        );
    }
}

#[test]
fn buffers_land_on_the_requested_device() {
    let client = client(&cpu_plugin(), 2);
    let literal = Literal::from_vec(&[2], &[1.0f32, 2.0]).unwrap();
    for device in client.addressable_devices() {
        let buffer = client.buffer_from_literal(&literal, device).unwrap();
        assert_eq!(buffer.device().unwrap().id(), device.id());
        buffer.block_until_ready().unwrap();
    }
}

#[test]
fn mismatched_host_data_and_foreign_devices_are_rejected_before_the_plugin() {
    let client_a = client(&cpu_plugin(), 1);
    let client_b = client(&cpu_plugin(), 1);
    let shape = ArrayShape::new(ElementType::F32, &[2, 2]);
    let err = client_a
        .buffer_from_bytes(&[0u8; 12], &shape, &client_a.addressable_devices()[0])
        .unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidArgument(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("12 bytes does not match shape f32[2,2]{1,0} (16 bytes)"),
        "{err}"
    );
    let err = client_a
        .buffer_from_bytes(&[0u8; 16], &shape, &client_b.addressable_devices()[0])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is not an addressable device of this cpu client"),
        "{err}"
    );
}
