//! Exported buffer functions: create, adopt, view, share, slice, copy out, release, stats.

use std::os::raw::c_void;

use super::boundary::run;
use super::status::FerryStatus;
use super::{caller_bytes, nonnull_mut};
use crate::table::{Table, View};

/// An id together with the address and length of its bytes.
///
/// `ptr` is NULL exactly when `len` is 0. Ownership: the bytes belong to ferry; the pointer stays
/// valid until the last id over the same memory is released (any id from a share or slice of it
/// counts). Writing through `ptr` is allowed; synchronising readers and writers is the caller's job.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FerryView {
    /// The id; never 0.
    pub id: u64,
    /// The first byte, or NULL for an empty view.
    pub ptr: *mut u8,
    /// The length in bytes.
    pub len: usize,
}

impl From<View> for FerryView {
    fn from(v: View) -> FerryView {
        FerryView { id: v.id, ptr: v.ptr, len: v.len }
    }
}

/// Counters for the process-wide table.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FerryStats {
    /// Ids issued and not yet released.
    pub live_ids: u64,
    /// Bytes held alive by live ids, counted once per allocation however many ids share it.
    pub live_bytes: u64,
    /// The highest live_bytes since start (or since ferry_peak_reset): exact for buffers of 256 KiB
    /// or more; smaller creates on other threads may be seen up to 256 KiB late per thread. Never
    /// above the limit.
    pub peak_bytes: u64,
    /// Ids issued since start.
    pub created: u64,
    /// Ids released since start.
    pub released: u64,
    /// The live-byte limit, 0 for none.
    pub limit_bytes: u64,
}

/// A function ferry calls exactly once to hand adopted memory back to its owner, when the last id
/// over it is released. It runs on the thread that releases that id, with no ferry lock held; it
/// must not unwind.
pub type FerryReleaseFn = Option<unsafe extern "C" fn(user_data: *mut c_void, data: *mut u8, len: usize)>;

/// Largest buffer length ferry accepts: 1 TiB (2^40 bytes).
pub const FERRY_MAX_LEN: u64 = 0x100_0000_0000;

/// The ABI version of this header and library; bumped on any incompatible change.
pub const FERRY_ABI_VERSION: u32 = 1;

fn write_view(out: *mut FerryView, v: View) {
    // SAFETY: every caller checked `out` for NULL first, and the caller promised a writable FerryView.
    unsafe { out.write(v.into()) }
}

/// Returns FERRY_ABI_VERSION as compiled into the library, so a caller can check that the header it
/// was built against matches the library it loaded.
#[no_mangle]
pub extern "C" fn ferry_abi_version() -> u32 {
    FERRY_ABI_VERSION
}

/// Creates a zeroed buffer of `len` bytes and stores its id and view in `*view_out`.
///
/// The caller owns the new id and must release it once (ferry_buffer_release). The bytes may be
/// written through the view. `len == 0` makes an empty buffer with a NULL view pointer.
/// Errors: NULL_POINTER (`view_out`), TOO_LARGE, LIMIT_REACHED, ALLOC_FAILED, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_buffer_new(len: usize, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_buffer_new", || {
        let out = nonnull_mut(view_out)?;
        write_view(out, Table::global().create_zeroed(len)?);
        Ok(())
    })
}

/// Creates a buffer holding a copy of `len` bytes at `data` and stores its id and view in `*view_out`.
///
/// ferry does not keep `data`. The caller owns the new id. `data` may be NULL when `len` is 0.
/// Errors: NULL_POINTER, TOO_LARGE, LIMIT_REACHED, ALLOC_FAILED, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_buffer_copy(data: *const u8, len: usize, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_buffer_copy", || {
        let out = nonnull_mut(view_out)?;
        // SAFETY: the caller promised `len` readable bytes at `data`, unchanged during this call.
        let src = unsafe { caller_bytes(data, len)? };
        write_view(out, Table::global().create_copy(src)?);
        Ok(())
    })
}

/// Adopts `len` bytes at `data` without copying and stores the new id and view in `*view_out`.
///
/// On success ferry owns the memory until the last id over it is released; then it calls
/// `release(user_data, data, len)` exactly once, on the releasing thread (NULL `release`: nothing is
/// called, for memory that outlives ferry, such as static data). The memory must stay valid and must
/// not be freed by anyone else until then. On any error ferry takes nothing: `release` is not called
/// and the caller still owns `data`. `data` may be NULL when `len` is 0.
/// Errors: NULL_POINTER, TOO_LARGE, LIMIT_REACHED, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_buffer_adopt(
    data: *mut u8,
    len: usize,
    release: FerryReleaseFn,
    user_data: *mut c_void,
    view_out: *mut FerryView,
) -> FerryStatus {
    struct Owner {
        release: FerryReleaseFn,
        user_data: *mut c_void,
        data: *mut u8,
        len: usize,
    }
    // SAFETY: the C caller hands the memory and user_data to ferry; the documented contract is that
    // the release function may be called from any thread.
    unsafe impl Send for Owner {}
    impl Owner {
        fn give_back(self) {
            if let Some(f) = self.release {
                // SAFETY: called once, with the exact arguments the owner handed over.
                unsafe { f(self.user_data, self.data, self.len) }
            }
        }
    }

    run("ferry_buffer_adopt", || {
        let out = nonnull_mut(view_out)?;
        if len > crate::MAX_LEN {
            return Err(FerryStatus::TooLarge);
        }
        if len > 0 && data.is_null() {
            return Err(FerryStatus::NullPointer);
        }
        let owner = Owner { release, user_data, data, len };
        // SAFETY: the caller promised `len` valid bytes at `data` until `release` runs, and gave
        // ferry sole responsibility for freeing them.
        let v = unsafe { Table::global().adopt_raw(data, len, move || owner.give_back())? };
        write_view(out, v);
        Ok(())
    })
}

/// Stores the view of `id` in `*view_out`. The id stays owned by the caller.
/// Errors: INVALID_HANDLE, NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_buffer_view(id: u64, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_buffer_view", || {
        let out = nonnull_mut(view_out)?;
        write_view(out, Table::global().view(id)?);
        Ok(())
    })
}

/// Claims `id` for one owner and stores its view in `*view_out`.
///
/// A language binding's buffer object claims the id it owns (the Go package claims the id of every
/// Buffer), so that a second object can never take the same id: releasing it would free memory the
/// first still reads. A claim changes nothing else: the id is released as any other (which ends the
/// claim), and its shares and slices are new, unclaimed ids.
/// Errors: INVALID_HANDLE (unknown or released id, or one claimed already), NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_buffer_claim(id: u64, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_buffer_claim", || {
        let out = nonnull_mut(view_out)?;
        write_view(out, Table::global().claim(id)?);
        Ok(())
    })
}

/// Gives up the claim on `id` (ferry_buffer_claim), as an owner does that hands the id on.
/// Errors: INVALID_HANDLE (unknown or released id, or one not claimed).
#[no_mangle]
pub extern "C" fn ferry_buffer_disclaim(id: u64) -> FerryStatus {
    run("ferry_buffer_disclaim", || Ok(Table::global().disclaim(id)?))
}

/// Makes a second id over the same memory as `id` and stores it in `*view_out`.
///
/// The caller owns the new id; either id may be released first, and the memory lives until both are.
/// Errors: INVALID_HANDLE, NULL_POINTER, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_buffer_share(id: u64, view_out: *mut FerryView) -> FerryStatus {
    run("ferry_buffer_share", || {
        let out = nonnull_mut(view_out)?;
        write_view(out, Table::global().share(id)?);
        Ok(())
    })
}

/// Makes an id over `len` bytes starting at `offset` within `id`'s view, sharing its memory.
///
/// The caller owns the new id; the memory lives until it and every other id over it are released.
/// Errors: INVALID_HANDLE, NULL_POINTER, OVERFLOW (`offset + len` wraps), OUT_OF_RANGE, TABLE_FULL.
#[no_mangle]
pub extern "C" fn ferry_buffer_slice(
    id: u64,
    offset: usize,
    len: usize,
    view_out: *mut FerryView,
) -> FerryStatus {
    run("ferry_buffer_slice", || {
        let out = nonnull_mut(view_out)?;
        write_view(out, Table::global().slice(id, offset, len)?);
        Ok(())
    })
}

/// Copies `len` bytes starting at `offset` within `id`'s view into `dst` (the copying path).
///
/// `dst` may be NULL when `len` is 0, and may even overlap the buffer (the copy is a memmove).
/// Errors: INVALID_HANDLE, NULL_POINTER, TOO_LARGE, OVERFLOW, OUT_OF_RANGE; on error `dst` is untouched.
#[no_mangle]
pub extern "C" fn ferry_buffer_copy_out(id: u64, offset: usize, dst: *mut u8, len: usize) -> FerryStatus {
    run("ferry_buffer_copy_out", || {
        if len > crate::MAX_LEN {
            return Err(FerryStatus::TooLarge);
        }
        if len > 0 {
            nonnull_mut(dst)?;
        }
        let src = Table::global().get(id)?.slice(offset, len)?;
        if len > 0 {
            // SAFETY: `src` keeps `len` bytes alive for this call; the caller promised `len` writable
            // bytes at `dst`; `ptr::copy` allows the two ranges to overlap.
            unsafe { std::ptr::copy(src.as_ptr(), dst, len) };
        }
        Ok(())
    })
}

/// Releases `id`. After this the id is invalid forever (a second release returns INVALID_HANDLE).
/// The memory is freed, or handed back to its adopter, when the last id over it is released.
/// Errors: INVALID_HANDLE.
#[no_mangle]
pub extern "C" fn ferry_buffer_release(id: u64) -> FerryStatus {
    run("ferry_buffer_release", || Table::global().release(id).map_err(Into::into))
}

/// Releases the `n` ids at `ids` in one call, skipping invalid ones, and stores how many were
/// released in `*released_out` (which may be NULL).
///
/// `ids` may be NULL when `n` is 0. Returns OK when every id was valid.
/// Errors: INVALID_HANDLE (at least one id was not valid; the valid ones are still released),
/// NULL_POINTER, TOO_LARGE (a bad array: nothing is released).
#[no_mangle]
pub extern "C" fn ferry_buffer_release_many(
    ids: *const u64,
    n: usize,
    released_out: *mut usize,
) -> FerryStatus {
    run("ferry_buffer_release_many", || {
        if n > crate::MAX_LEN / 8 {
            return Err(FerryStatus::TooLarge);
        }
        let ids: &[u64] = if n == 0 {
            &[]
        } else if ids.is_null() {
            return Err(FerryStatus::NullPointer);
        } else {
            // SAFETY: non-null, and the caller promised `n` readable ids at `ids` for this call.
            unsafe { std::slice::from_raw_parts(ids, n) }
        };
        let released = Table::global().release_many(ids);
        if !released_out.is_null() {
            // SAFETY: non-null, and the caller promised a writable size_t there.
            unsafe { released_out.write(released) };
        }
        if released == n {
            Ok(())
        } else {
            Err(FerryStatus::InvalidHandle)
        }
    })
}

/// Stores the process-wide table's counters in `*stats_out`. Errors: NULL_POINTER.
#[no_mangle]
pub extern "C" fn ferry_stats_get(stats_out: *mut FerryStats) -> FerryStatus {
    run("ferry_stats_get", || {
        let out = nonnull_mut(stats_out)?;
        let s = Table::global().stats();
        let st = FerryStats {
            live_ids: s.live_ids,
            live_bytes: s.live_bytes,
            peak_bytes: s.peak_bytes,
            created: s.created,
            released: s.released,
            limit_bytes: s.limit_bytes,
        };
        // SAFETY: non-null, and the caller promised a writable FerryStats there.
        unsafe { out.write(st) };
        Ok(())
    })
}

/// Sets the live-byte limit (0 removes it). The limit is exact: live bytes never exceed it, across
/// all threads, and a create or adopt fails with LIMIT_REACHED only when the live bytes, plus the
/// bytes of creates running at the same moment, plus its own size would exceed it. Bytes already
/// live are not touched (a limit below them refuses every create until enough is released).
/// Errors: none.
#[no_mangle]
pub extern "C" fn ferry_limit_set(bytes: u64) -> FerryStatus {
    run("ferry_limit_set", || {
        Table::global().set_limit(bytes);
        Ok(())
    })
}

/// Starts peak tracking again from the current live bytes. Errors: none.
#[no_mangle]
pub extern "C" fn ferry_peak_reset() -> FerryStatus {
    run("ferry_peak_reset", || {
        Table::global().reset_peak();
        Ok(())
    })
}

/// Turns guard mode on (`on != 0`) or off for buffers created from now on. In guard mode every
/// zeroed or copied buffer gets pages of its own, and released pages are made inaccessible instead of
/// freed, so a use after release faults at once. Adopted memory is never written by ferry, in guard
/// mode or not: the release function gets the bytes as the last holder left them, memory adopted
/// with a NULL release function (static or const data) is left alone, and a refused adoption hands
/// the memory back untouched. Guard mode leaks address space by design: it is for debugging only.
/// Errors: none.
#[no_mangle]
pub extern "C" fn ferry_guard_set(on: u32) -> FerryStatus {
    run("ferry_guard_set", || {
        crate::buffer::set_guard_mode(on != 0);
        Ok(())
    })
}
const _: () = assert!(FERRY_MAX_LEN as usize == crate::MAX_LEN);
