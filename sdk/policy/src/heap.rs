//! A global allocator for policies built for `wasm32-unknown-unknown`.
//!
//! Ward runs every decision on a fresh instance, so a policy's memory only
//! has to last one call. [`DecisionHeap`] hands out memory by moving a
//! pointer up from the end of the module's static data, growing the linear
//! memory when it runs out, and takes back only the most recent
//! allocation (which is what a growing `Vec` or `String` frees). Nothing
//! else is reused: the whole heap goes away with the instance. The
//! tenant's memory limit bounds a decision that allocates a great deal;
//! going over it is reported as `policy_error:memory_limit` like any other
//! failed allocation.
//!
//! Why not the standard allocator: on `wasm32-unknown-unknown` it takes
//! its first memory with `memory.grow`, so every fresh instance grows its
//! memory once, and the host must undo the growth when the instance is
//! dropped. This heap starts in the memory the module already has.
//!
//! Only for `wasm32-unknown-unknown` without threads: on `wasm32-wasip2`
//! the C library's `malloc` claims the same memory after the static data,
//! so the two must not be mixed there.

use std::alloc::{GlobalAlloc, Layout};
use std::arch::wasm32;
use std::cell::Cell;
use std::ptr;

const PAGE: usize = 65536;

unsafe extern "C" {
    /// Set by the linker: the first byte after the stack and static data.
    static __heap_base: u8;
}

/// A bump allocator for one decision's worth of memory; see the module
/// documentation. Install it in the policy crate:
///
/// ```ignore
/// #[global_allocator]
/// static HEAP: ward_policy::DecisionHeap = ward_policy::DecisionHeap::new();
/// ```
pub struct DecisionHeap {
    /// The next free byte; 0 until the first allocation.
    next: Cell<usize>,
    /// The end of linear memory as last grown.
    end: Cell<usize>,
}

// SAFETY: this module is only built for wasm32 without the `atomics`
// feature, where a program has exactly one thread.
unsafe impl Sync for DecisionHeap {}

impl DecisionHeap {
    /// An empty heap; it finds its start on the first allocation.
    pub const fn new() -> Self {
        DecisionHeap {
            next: Cell::new(0),
            end: Cell::new(0),
        }
    }

    /// Makes sure memory reaches `stop`, growing it by whole pages.
    fn reserve(&self, stop: usize) -> bool {
        if stop <= self.end.get() {
            return true;
        }
        let pages = (stop - self.end.get()).div_ceil(PAGE);
        let before = wasm32::memory_grow(0, pages);
        if before == usize::MAX {
            return false;
        }
        self.end.set((before + pages) * PAGE);
        true
    }

    /// The first allocation starts the heap after the linker's data.
    fn start(&self) {
        if self.next.get() == 0 {
            self.next.set(ptr::addr_of!(__heap_base) as usize);
            self.end.set(wasm32::memory_size(0) * PAGE);
        }
    }
}

impl Default for DecisionHeap {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: every block handed out lies between `__heap_base` and the end
// of linear memory, is aligned as asked, and does not overlap a block that
// is still live: `next` only moves down when the block ending at it is
// freed or resized.
unsafe impl GlobalAlloc for DecisionHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.start();
        let Some(first) = self.next.get().checked_next_multiple_of(layout.align()) else {
            return ptr::null_mut();
        };
        let Some(stop) = first.checked_add(layout.size()) else {
            return ptr::null_mut();
        };
        if !self.reserve(stop) {
            return ptr::null_mut();
        }
        self.next.set(stop);
        first as *mut u8
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if block as usize + layout.size() == self.next.get() {
            self.next.set(block as usize);
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let at = block as usize;
        if at + layout.size() == self.next.get() {
            // The last block: grow or shrink it where it is.
            let Some(stop) = at.checked_add(new_size) else {
                return ptr::null_mut();
            };
            if !self.reserve(stop) {
                return ptr::null_mut();
            }
            self.next.set(stop);
            return block;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: `new_layout` has a non-zero size, as `realloc`'s caller
        // guarantees for `new_size`.
        let moved = unsafe { self.alloc(new_layout) };
        if !moved.is_null() {
            // SAFETY: both blocks are live, distinct, and at least this long.
            unsafe { ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size)) };
        }
        moved
    }
}
