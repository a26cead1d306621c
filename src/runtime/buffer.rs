//! `PJRT_Buffer`: arrays in device memory, and transfers between host and device.

use std::ffi::c_void;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::hlo::{ArrayShape, ElementType, Literal};

use super::client::{Client, ClientInner, Device};
use super::error::{Result, RuntimeError};
use super::event::Event;
use super::ffi::{self, ApiFunction};

/// The `PJRT_Buffer_Type` of an element type (a numbering of its own, unlike `xla.PrimitiveType`:
/// e.g. bf16 is 13 here and 16 there).
fn pjrt_buffer_type(ty: ElementType) -> u32 {
    match ty {
        ElementType::Pred => 1,
        ElementType::S8 => 2,
        ElementType::S32 => 4,
        ElementType::S64 => 5,
        ElementType::U8 => 6,
        ElementType::U32 => 8,
        ElementType::U64 => 9,
        ElementType::F16 => 10,
        ElementType::F32 => 11,
        ElementType::F64 => 12,
        ElementType::Bf16 => 13,
    }
}

fn element_type_of(pjrt_type: u32) -> Option<ElementType> {
    ElementType::ALL
        .into_iter()
        .find(|ty| pjrt_buffer_type(*ty) == pjrt_type)
}

/// An array in device memory, owned by this handle and destroyed when it is dropped.
///
/// `Buffer` is `Send + Sync`: PJRT buffers are thread-safe (XLA's `PjRtBuffer` contract), and
/// the handle keeps its client alive.
pub struct Buffer {
    raw: NonNull<c_void>,
    client: Arc<ClientInner>,
}

// SAFETY: see the type's documentation.
unsafe impl Send for Buffer {}
unsafe impl Sync for Buffer {}

impl Buffer {
    /// Takes ownership of a buffer the plugin created for `client`.
    pub(crate) fn from_raw(
        client: &Arc<ClientInner>,
        raw: *mut c_void,
        function: &'static str,
    ) -> Result<Buffer> {
        let raw = NonNull::new(raw)
            .ok_or_else(|| RuntimeError::protocol(function, "returned a null buffer"))?;
        Ok(Buffer {
            raw,
            client: Arc::clone(client),
        })
    }

    pub(crate) fn raw(&self) -> *mut c_void {
        self.raw.as_ptr()
    }

    pub(crate) fn client_inner(&self) -> &Arc<ClientInner> {
        &self.client
    }

    /// The client that owns this buffer.
    pub fn client(&self) -> Client {
        Client {
            inner: Arc::clone(&self.client),
        }
    }

    pub fn element_type(&self) -> Result<ElementType> {
        let mut args = ffi::BufferElementTypeArgs {
            buffer: self.raw(),
            ..Default::default()
        };
        // SAFETY: live buffer.
        unsafe { self.client.api().call(&mut args) }?;
        element_type_of(args.buffer_type).ok_or_else(|| {
            RuntimeError::protocol(
                ffi::BufferElementTypeArgs::NAME,
                format!(
                    "PJRT_Buffer_Type {} has no ElementType counterpart",
                    args.buffer_type
                ),
            )
        })
    }

    pub fn dims(&self) -> Result<Vec<i64>> {
        let mut args = ffi::BufferDimensionsArgs {
            buffer: self.raw(),
            ..Default::default()
        };
        // SAFETY: live buffer; the dims live as long as the buffer and are copied.
        unsafe {
            self.client.api().call(&mut args)?;
            Ok(super::api::slice_from_raw(args.dims, args.num_dims).to_vec())
        }
    }

    /// Element type and dims, with the row-major layout (the device layout is the plugin's
    /// business; transfers to the host always produce row-major data).
    pub fn shape(&self) -> Result<ArrayShape> {
        ArrayShape::try_new(self.element_type()?, &self.dims()?)
            .map_err(|e| RuntimeError::protocol(ffi::BufferDimensionsArgs::NAME, e))
    }

    /// The device holding the buffer.
    pub fn device(&self) -> Result<&Device> {
        let mut args = ffi::BufferDeviceArgs {
            buffer: self.raw(),
            ..Default::default()
        };
        // SAFETY: live buffer.
        unsafe { self.client.api().call(&mut args) }?;
        self.client
            .addressable_device_by_raw(args.device)
            .ok_or_else(|| {
                RuntimeError::protocol(ffi::BufferDeviceArgs::NAME, "device is not addressable")
            })
    }

    /// Waits until the buffer's value is computed; returns the error of the computation or
    /// transfer that produces it, if that failed.
    pub fn block_until_ready(&self) -> Result<()> {
        let mut args = ffi::BufferReadyEventArgs {
            buffer: self.raw(),
            ..Default::default()
        };
        // SAFETY: live buffer.
        unsafe { self.client.api().call(&mut args) }?;
        Event::from_raw(self.client.api(), args.event).wait()
    }

    /// The address of the buffer's device memory, as an opaque number. Two buffers with the
    /// same address share memory, which is how a test can see that a donated input became an
    /// output.
    pub fn opaque_device_address(&self) -> Result<usize> {
        let mut args = ffi::BufferOpaqueDeviceMemoryDataPointerArgs {
            buffer: self.raw(),
            ..Default::default()
        };
        // SAFETY: live buffer; the pointer is only turned into a number.
        unsafe { self.client.api().call(&mut args) }?;
        Ok(args.device_memory_ptr as usize)
    }

    /// Copies the buffer to the host as a dense row-major literal (an explicit host layout, so
    /// a tiled device layout never leaks into host data).
    pub fn to_literal(&self) -> Result<Literal> {
        let shape = self.shape()?;
        let rank = shape.rank() as i64;
        let row_major: Vec<i64> = (0..rank).rev().collect();
        let mut host_layout = ffi::BufferMemoryLayout {
            tiled: ffi::BufferMemoryLayoutTiled {
                minor_to_major: row_major.as_ptr(),
                minor_to_major_size: row_major.len(),
                ..Default::default()
            },
            layout_type: ffi::MEMORY_LAYOUT_TILED,
            ..Default::default()
        };
        let mut bytes = vec![0u8; shape.byte_size()];
        let mut args = ffi::BufferToHostBufferArgs {
            src: self.raw(),
            host_layout: &mut host_layout,
            dst: bytes.as_mut_ptr().cast(),
            dst_size: bytes.len(),
            ..Default::default()
        };
        // SAFETY: live buffer; `host_layout` and `row_major` outlive the call, `bytes` outlives
        // the event (awaited below, or on drop if anything fails first).
        unsafe { self.client.api().call(&mut args) }?;
        Event::from_raw(self.client.api(), args.event).wait()?;
        Literal::from_bytes(shape, bytes)
            .map_err(|e| RuntimeError::protocol(ffi::BufferToHostBufferArgs::NAME, e))
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.shape() {
            Ok(shape) => write!(f, "Buffer({shape})"),
            Err(e) => write!(f, "Buffer(<{e}>)"),
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut args = ffi::BufferDestroyArgs {
            buffer: self.raw(),
            ..Default::default()
        };
        // SAFETY: this handle owns the buffer and destroys it once. PJRT keeps the memory alive
        // for computations still using it. A failure leaves nothing to undo.
        let _ = unsafe { self.client.api().call(&mut args) };
    }
}

impl Client {
    /// Copies host data laid out as `shape` says (its `minor_to_major` layout, dense) to a new
    /// buffer on `device`.
    pub fn buffer_from_bytes(
        &self,
        bytes: &[u8],
        shape: &ArrayShape,
        device: &Device,
    ) -> Result<Buffer> {
        if bytes.len() != shape.byte_size() {
            return Err(RuntimeError::invalid(format!(
                "host data of {} bytes does not match shape {shape} ({} bytes)",
                bytes.len(),
                shape.byte_size()
            )));
        }
        self.inner.check_addressable(device)?;
        let byte_strides = byte_strides(shape);
        let mut args = ffi::ClientBufferFromHostBufferArgs {
            client: self.inner.raw(),
            data: bytes.as_ptr().cast(),
            buffer_type: pjrt_buffer_type(shape.ty()),
            dims: shape.dims().as_ptr(),
            num_dims: shape.rank(),
            byte_strides: byte_strides
                .as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr()),
            num_byte_strides: byte_strides.as_ref().map_or(0, Vec::len),
            host_buffer_semantics: ffi::HOST_BUFFER_IMMUTABLE_UNTIL_TRANSFER_COMPLETES,
            device: device.raw(),
            ..Default::default()
        };
        // SAFETY: `bytes` stays borrowed until `done_with_host_buffer` has fired (awaited below,
        // or when the event drops); dims and strides outlive the call.
        unsafe { self.inner.api().call(&mut args) }?;
        let done = Event::from_raw(self.inner.api(), args.done_with_host_buffer);
        let buffer = Buffer::from_raw(
            &self.inner,
            args.buffer,
            ffi::ClientBufferFromHostBufferArgs::NAME,
        );
        done.wait()?;
        buffer
    }

    /// Copies a literal to a new buffer on `device`.
    pub fn buffer_from_literal(&self, literal: &Literal, device: &Device) -> Result<Buffer> {
        self.buffer_from_bytes(literal.bytes(), literal.shape(), device)
    }
}

/// Byte strides of a dense array in `shape`'s layout, or `None` for the row-major layout that
/// PJRT assumes when no strides are given.
fn byte_strides(shape: &ArrayShape) -> Option<Vec<i64>> {
    let rank = shape.rank();
    let row_major = shape
        .minor_to_major()
        .iter()
        .rev()
        .map(|&d| d as usize)
        .eq(0..rank);
    if row_major {
        return None;
    }
    let mut strides = vec![0i64; rank];
    let mut stride = shape.ty().byte_size() as i64;
    for &dim in shape.minor_to_major() {
        strides[dim as usize] = stride;
        stride *= shape.dims()[dim as usize];
    }
    Some(strides)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pjrt_buffer_types_round_trip_and_differ_from_primitive_types_for_bf16() {
        for ty in ElementType::ALL {
            assert_eq!(element_type_of(pjrt_buffer_type(ty)), Some(ty));
        }
        assert_eq!(pjrt_buffer_type(ElementType::Bf16), 13);
        assert_eq!(ElementType::Bf16 as i32, 16);
        assert_eq!(element_type_of(3), None, "S16 is not an ElementType");
    }

    #[test]
    fn strides_follow_the_layout() {
        let row_major = ArrayShape::new(ElementType::F32, &[2, 3, 4]);
        assert_eq!(byte_strides(&row_major), None);
        let column_major =
            ArrayShape::with_layout(ElementType::F32, &[2, 3, 4], &[0, 1, 2]).unwrap();
        assert_eq!(byte_strides(&column_major), Some(vec![4, 8, 24]));
        let mixed = ArrayShape::with_layout(ElementType::S64, &[2, 3], &[0, 1]).unwrap();
        assert_eq!(byte_strides(&mixed), Some(vec![8, 16]));
    }
}
