//! Calling into a plugin's `PJRT_Api` function table: slot gating and error conversion.

use std::ffi::{c_char, c_void};
use std::ptr::NonNull;

use super::error::{ErrorCode, Result, RuntimeError};
use super::ffi::{self, ApiFunction, RawFunction};
use super::version::ApiVersion;

/// A plugin's function table. Valid as long as the plugin library stays loaded, which
/// [`super::Plugin`] guarantees by never unloading it.
pub(crate) struct Api {
    table: NonNull<ffi::ApiHeader>,
    table_size: usize,
    version: ApiVersion,
}

// SAFETY: the table is immutable after `GetPjrtApi` returns and PJRT functions may be called from
// any thread (the C API's objects are internally synchronized, as XLA's `PjRtClient` is).
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

impl Api {
    /// Reads the header of the table `GetPjrtApi` returned.
    ///
    /// # Safety
    /// `table` must point to a `PJRT_Api` that stays valid for the life of the returned value.
    pub(crate) unsafe fn from_raw(table: NonNull<ffi::ApiHeader>) -> Api {
        // SAFETY: guaranteed by the caller; `struct_size` and the version come first in every
        // version of `PJRT_Api`.
        let header = unsafe { table.as_ref() };
        let version = ApiVersion {
            major: header.version.major_version,
            minor: header.version.minor_version,
        };
        Api {
            table,
            table_size: header.struct_size,
            version,
        }
    }

    pub(crate) fn version(&self) -> ApiVersion {
        self.version
    }

    /// The size in bytes of the plugin's `PJRT_Api` (how many slots it has).
    pub(crate) fn table_size(&self) -> usize {
        self.table_size
    }

    /// Whether the plugin's table is long enough to contain slot `slot`.
    pub(crate) fn has_slot(&self, slot: usize) -> bool {
        ffi::FUNCTION_TABLE_OFFSET + (slot + 1) * std::mem::size_of::<RawFunction>()
            <= self.table_size
    }

    /// The function pointer in a slot, or `Unsupported` when the table is too short or the slot
    /// is null.
    fn slot(&self, slot: usize, function: &'static str) -> Result<RawFunction> {
        let unsupported = || RuntimeError::Unsupported {
            function,
            version: self.version,
            table_size: self.table_size,
        };
        if !self.has_slot(slot) {
            return Err(unsupported());
        }
        let offset = ffi::FUNCTION_TABLE_OFFSET + slot * std::mem::size_of::<RawFunction>();
        // SAFETY: `has_slot` proved the slot lies inside the plugin's table; a slot holds a
        // nullable function pointer, which `Option<fn>` represents exactly.
        let entry = unsafe {
            self.table
                .as_ptr()
                .cast::<u8>()
                .add(offset)
                .cast::<Option<RawFunction>>()
                .read()
        };
        entry.ok_or_else(unsupported)
    }

    /// Calls the function that takes `A`, turning a returned `PJRT_Error` into `Err`.
    ///
    /// # Safety
    /// Every pointer in `args` must satisfy the contract of that PJRT function.
    pub(crate) unsafe fn call<A: ApiFunction>(&self, args: &mut A) -> Result<()> {
        let function = self.slot(A::SLOT, A::NAME)?;
        // SAFETY: the slot holds the function taking `*mut A` (the `ApiFunction` contract); all
        // pointer arguments are passed identically under the C ABI.
        let error = unsafe { function((args as *mut A).cast::<c_void>()) };
        match NonNull::new(error) {
            None => Ok(()),
            Some(error) => Err(self.take_error(error, A::NAME)),
        }
    }

    /// Reads code and message of a `PJRT_Error` and destroys it.
    pub(crate) fn take_error(
        &self,
        error: NonNull<c_void>,
        function: &'static str,
    ) -> RuntimeError {
        let (code, message) = self.describe_error(error);
        self.destroy_error(error);
        RuntimeError::Pjrt {
            function,
            code,
            message,
        }
    }

    /// Destroys a `PJRT_Error` whose content is not needed.
    pub(crate) fn destroy_error(&self, error: NonNull<c_void>) {
        let mut args = ffi::ErrorDestroyArgs {
            error: error.as_ptr(),
            ..Default::default()
        };
        if let Ok(destroy) = self.slot(ffi::ErrorDestroyArgs::SLOT, ffi::ErrorDestroyArgs::NAME) {
            // SAFETY: slot 0 is `void PJRT_Error_Destroy(PJRT_Error_Destroy_Args*)`; the return
            // register is ignored. The error is live and destroyed exactly once here.
            unsafe { destroy((&mut args as *mut ffi::ErrorDestroyArgs).cast()) };
        }
    }

    fn describe_error(&self, error: NonNull<c_void>) -> (ErrorCode, String) {
        let mut message_args = ffi::ErrorMessageArgs {
            error: error.as_ptr(),
            ..Default::default()
        };
        let message = match self.slot(ffi::ErrorMessageArgs::SLOT, ffi::ErrorMessageArgs::NAME) {
            Ok(message_fn) => {
                // SAFETY: slot 1 is `void PJRT_Error_Message(PJRT_Error_Message_Args*)`; the
                // message points into the still-live error.
                unsafe {
                    message_fn((&mut message_args as *mut ffi::ErrorMessageArgs).cast());
                    string_from_raw(message_args.message, message_args.message_size)
                }
            }
            Err(e) => e.to_string(),
        };
        let mut code_args = ffi::ErrorGetCodeArgs {
            error: error.as_ptr(),
            ..Default::default()
        };
        let code = match self.slot(ffi::ErrorGetCodeArgs::SLOT, ffi::ErrorGetCodeArgs::NAME) {
            Ok(code_fn) => {
                // SAFETY: slot 2 is `PJRT_Error* PJRT_Error_GetCode(PJRT_Error_GetCode_Args*)`.
                let nested =
                    unsafe { code_fn((&mut code_args as *mut ffi::ErrorGetCodeArgs).cast()) };
                match NonNull::new(nested) {
                    None => ErrorCode::from_raw(code_args.code),
                    Some(nested) => {
                        self.destroy_error(nested);
                        ErrorCode::Unknown
                    }
                }
            }
            Err(_) => ErrorCode::Unknown,
        };
        (code, message)
    }
}

/// Copies a `(pointer, length)` string from the plugin; invalid UTF-8 is replaced, null is "".
///
/// # Safety
/// `data` must be null or point to `len` readable bytes.
pub(crate) unsafe fn string_from_raw(data: *const c_char, len: usize) -> String {
    if data.is_null() || len == 0 {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// Borrows a `(pointer, length)` array from the plugin as a slice; null or empty gives `&[]`.
///
/// # Safety
/// `data` must be null or point to `len` initialized values that outlive `'a`.
pub(crate) unsafe fn slice_from_raw<'a, T>(data: *const T, len: usize) -> &'a [T] {
    if data.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(data, len) }
}

#[cfg(test)]
mod tests {
    //! A fake plugin table with Rust stand-ins for the error functions, to check slot gating and
    //! that every returned error is read and destroyed exactly once.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct FakeError {
        code: u32,
        message: &'static str,
        destroyed: &'static AtomicUsize,
    }

    unsafe extern "C" fn destroy(args: *mut c_void) -> *mut c_void {
        let args = unsafe { &*args.cast::<ffi::ErrorDestroyArgs>() };
        let error = unsafe { Box::from_raw(args.error.cast::<FakeError>()) };
        error.destroyed.fetch_add(1, Ordering::SeqCst);
        std::ptr::null_mut()
    }

    unsafe extern "C" fn message(args: *mut c_void) -> *mut c_void {
        let args = unsafe { &mut *args.cast::<ffi::ErrorMessageArgs>() };
        let error = unsafe { &*args.error.cast::<FakeError>() };
        args.message = error.message.as_ptr().cast();
        args.message_size = error.message.len();
        std::ptr::null_mut()
    }

    unsafe extern "C" fn get_code(args: *mut c_void) -> *mut c_void {
        let args = unsafe { &mut *args.cast::<ffi::ErrorGetCodeArgs>() };
        args.code = unsafe { &*args.error.cast::<FakeError>() }.code;
        std::ptr::null_mut()
    }

    static INITIALIZE_ERRORS_DESTROYED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn failing_initialize(_args: *mut c_void) -> *mut c_void {
        let error = FakeError {
            code: 9,
            message: "plugin refused",
            destroyed: &INITIALIZE_ERRORS_DESTROYED,
        };
        Box::into_raw(Box::new(error)).cast()
    }

    #[repr(C)]
    struct FakeTable {
        header: ffi::ApiHeader,
        slots: [Option<RawFunction>; 5],
    }

    /// A table with slots 0..=4 filled (slot 4 null) that claims `visible_slots` slots.
    fn fake_table(visible_slots: usize) -> Box<FakeTable> {
        Box::new(FakeTable {
            header: ffi::ApiHeader {
                struct_size: ffi::FUNCTION_TABLE_OFFSET + 8 * visible_slots,
                extension_start: std::ptr::null_mut(),
                version: ffi::ApiVersionRaw {
                    struct_size: 24,
                    extension_start: std::ptr::null_mut(),
                    major_version: 0,
                    minor_version: 90,
                },
            },
            slots: [
                Some(destroy),
                Some(message),
                Some(get_code),
                Some(failing_initialize),
                None,
            ],
        })
    }

    fn api_of(table: &FakeTable) -> Api {
        // SAFETY: the table outlives the `Api` in each test.
        unsafe { Api::from_raw(NonNull::from(&table.header)) }
    }

    #[test]
    fn an_error_is_converted_with_code_and_message_and_destroyed_once() {
        let table = fake_table(5);
        let api = api_of(&table);
        assert_eq!(
            api.version(),
            ApiVersion {
                major: 0,
                minor: 90
            }
        );
        let err = unsafe { api.call(&mut ffi::PluginInitializeArgs::default()) }.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::FailedPrecondition));
        assert_eq!(
            err.to_string(),
            "PJRT_Plugin_Initialize failed with FAILED_PRECONDITION: plugin refused"
        );
        assert_eq!(INITIALIZE_ERRORS_DESTROYED.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn slots_past_the_plugins_table_or_null_are_unsupported() {
        let table = fake_table(3);
        let api = api_of(&table);
        assert!(api.has_slot(2) && !api.has_slot(3));
        let err = unsafe { api.call(&mut ffi::PluginInitializeArgs::default()) }.unwrap_err();
        assert!(matches!(
            err,
            RuntimeError::Unsupported {
                function: "PJRT_Plugin_Initialize",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "PJRT_Plugin_Initialize is not provided by this plugin (PJRT C API 0.90, function table \
             of 64 bytes)"
        );
        let table = fake_table(5);
        let api = api_of(&table);
        let err = unsafe { api.call(&mut ffi::PluginAttributesArgs::default()) }.unwrap_err();
        assert!(matches!(
            err,
            RuntimeError::Unsupported {
                function: "PJRT_Plugin_Attributes",
                ..
            }
        ));
    }
}
