//! `PJRT_Event`: completion signals of asynchronous transfers and executions.

use std::ffi::c_void;
use std::ptr::NonNull;

use super::api::Api;
use super::error::Result;
use super::ffi;

/// An owned `PJRT_Event`. Dropping it first waits for the event, so memory that an asynchronous
/// operation reads or writes (host buffers of transfers) can never be freed while in use, even
/// on an early return; then it destroys the event.
pub(crate) struct Event<'a> {
    api: &'a Api,
    raw: Option<NonNull<c_void>>,
}

impl<'a> Event<'a> {
    /// Takes ownership of an event a PJRT function returned (null means "no event").
    pub(crate) fn from_raw(api: &'a Api, raw: *mut c_void) -> Event<'a> {
        Event {
            api,
            raw: NonNull::new(raw),
        }
    }

    /// Blocks until the event is ready and returns the error it carries, if any.
    pub(crate) fn wait(mut self) -> Result<()> {
        match self.raw.take() {
            None => Ok(()),
            Some(raw) => {
                let result = self.await_raw(raw);
                self.destroy_raw(raw);
                result
            }
        }
    }

    fn await_raw(&self, raw: NonNull<c_void>) -> Result<()> {
        let mut args = ffi::EventAwaitArgs {
            event: raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `raw` is a live event owned by `self`.
        unsafe { self.api.call(&mut args) }
    }

    fn destroy_raw(&self, raw: NonNull<c_void>) {
        let mut args = ffi::EventDestroyArgs {
            event: raw.as_ptr(),
            ..Default::default()
        };
        // SAFETY: `raw` is live and is destroyed exactly once (it was taken out of `self.raw`).
        // A failure to destroy leaves nothing for us to undo; its error object is destroyed.
        let _ = unsafe { self.api.call(&mut args) };
    }
}

impl Drop for Event<'_> {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            // The caller gave up on this event (an earlier error); its outcome no longer matters,
            // only that the operation is finished before the memory it uses goes away.
            let _ = self.await_raw(raw);
            self.destroy_raw(raw);
        }
    }
}
