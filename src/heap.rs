//! The wasm build's allocator: power-of-two size classes, each with a free list, over memory
//! claimed with `memory.grow`. A freed block goes back on its class's list and is reused as it
//! is (no splitting, no merging): a few hundred bytes of wasm where talc took 2.6 KB and
//! dlmalloc more. What it costs: a block is up to twice the size asked for, and memory freed in
//! one class serves only that class. The tracker's allocations repeat (records, bodies, command
//! text of the same shapes), so memory stays flat once each class has reached its peak
//! (`npm run bench -- --only memory`: 100,000 events delivered in one page).
//!
//! The size rule is pure and tested natively (`class`); reuse, alignment, growth and flat memory
//! are tested in the wasm (`tests/suite/heap.rs`), and every wasm suite allocates through it.

/// The class of a block for `size` bytes aligned to `align`: the least `k >= 2` with
/// `2^k >= max(size, align)` (a free block holds the next one's address, 4 bytes on wasm32), or
/// `None` past 2^31.
pub fn class(size: usize, align: usize) -> Option<usize> {
    let n = size.max(align).max(4);
    let k = usize::BITS - (n - 1).leading_zeros();
    (k < 32).then_some(k as usize)
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;
    use core::ptr::null_mut;

    use super::class;

    const PAGE: usize = 65536;

    struct State {
        /// Each class's first free block (0: none); a free block's first word is the next.
        free: [usize; 32],
        /// Where the next fresh block starts, and the end of the memory claimed so far (0 before
        /// the first allocation).
        next: usize,
        end: usize,
    }

    pub struct Heap(UnsafeCell<State>);

    // SAFETY: wasm32-unknown-unknown without atomics (src/js/mod.rs refuses that feature) has one
    // thread, and a global allocator is never re-entered on it.
    unsafe impl Sync for Heap {}

    impl Heap {
        #[allow(clippy::new_without_default)] // a `static` needs a `const fn`
        pub const fn new() -> Self {
            Heap(UnsafeCell::new(State {
                free: [0; 32],
                next: 0,
                end: 0,
            }))
        }
    }

    unsafe impl GlobalAlloc for Heap {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            let Some(k) = class(l.size(), l.align()) else {
                return null_mut();
            };
            // SAFETY: one thread, no re-entry (above): this is the only reference.
            let s = unsafe { &mut *self.0.get() };
            let Some(head) = s.free.get_mut(k) else {
                return null_mut();
            };
            // Every block is aligned to its size up to 16; a stronger alignment (no type of ours
            // asks for one) takes a fresh block.
            if *head != 0 && l.align() <= 16 {
                let b = *head;
                // SAFETY: `b` is a free block of this class, whose first word dealloc wrote.
                *head = unsafe { *(b as *const usize) };
                return b as *mut u8;
            }
            if s.end == 0 {
                // Start past everything the module owns (data, stack and the initial memory's
                // slack), as talc did: memory this allocator claims is its own.
                s.end = core::arch::wasm32::memory_size(0) * PAGE;
                s.next = s.end;
            }
            let size = 1usize << k;
            let align = l.align().max(size.min(16));
            let start = (s.next + align - 1) & !(align - 1);
            let Some(stop) = start.checked_add(size) else {
                return null_mut();
            };
            if stop > s.end {
                let pages = (stop - s.end).div_ceil(PAGE);
                if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                    return null_mut();
                }
                s.end += pages * PAGE;
            }
            s.next = stop;
            start as *mut u8
        }

        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: as in alloc.
            let s = unsafe { &mut *self.0.get() };
            if let Some(head) = class(l.size(), l.align()).and_then(|k| s.free.get_mut(k)) {
                // SAFETY: `p` was allocated with this layout, so it is a block of this class, at
                // least 4 bytes and aligned to 4; nothing else uses it now.
                unsafe { *(p as *mut usize) = *head };
                *head = p as usize;
            }
        }

        unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
            // The block already holds `new_size` bytes when the class stays.
            if class(l.size(), l.align()) == class(new_size, l.align()) {
                return p;
            }
            // SAFETY: the contract of `realloc` is the caller's; `l.align()` is valid.
            let n = unsafe { Layout::from_size_align_unchecked(new_size, l.align()) };
            // SAFETY: as in `GlobalAlloc::realloc`'s default.
            let q = unsafe { self.alloc(n) };
            if !q.is_null() {
                // SAFETY: both blocks hold at least min(old, new) bytes and do not overlap.
                unsafe {
                    core::ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                    self.dealloc(p, l);
                }
            }
            q
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::Heap;

#[cfg(test)]
mod tests {
    use super::class;

    #[test]
    fn a_block_holds_the_size_and_the_alignment_asked_for() {
        assert_eq!(class(1, 1), Some(2));
        assert_eq!(class(4, 4), Some(2));
        assert_eq!(class(5, 1), Some(3));
        assert_eq!(class(8, 8), Some(3));
        assert_eq!(class(9, 4), Some(4));
        assert_eq!(class(3, 16), Some(4));
        assert_eq!(class(1000, 8), Some(10));
        assert_eq!(class(1024, 8), Some(10));
        assert_eq!(class(1025, 8), Some(11));
        assert_eq!(class(1 << 31, 1), Some(31));
        assert_eq!(class((1 << 31) + 1, 1), None);
        for size in 1..5000usize {
            let k = class(size, 1).unwrap();
            assert!(
                1usize << k >= size && (k == 2 || 1usize << (k - 1) < size),
                "{size}"
            );
        }
    }
}
