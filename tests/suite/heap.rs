//! The wasm build's allocator (`src/heap.rs`), as the shipped code uses it: every test binary of
//! the wasm suites allocates through it, and these check what the rest only relies on.

use std::boxed::Box;
use std::string::String;
use std::vec::Vec;

use core::hint::black_box;

use wasm_bindgen_test::wasm_bindgen_test;

#[repr(align(16))]
struct A16([u8; 3]);

#[repr(align(64))]
struct A64([u8; 100]);

fn pages() -> usize {
    core::arch::wasm32::memory_size(0)
}

#[wasm_bindgen_test]
fn a_freed_block_serves_the_next_of_its_class_with_the_alignment_asked_for() {
    // A block of 9 bytes with alignment 1 is in the 16-byte class; freed, it is what the next
    // 16-byte request gets, and that one asks for alignment 16.
    let b = black_box(Box::new([7u8; 9]));
    let at = &*b as *const [u8; 9] as usize;
    drop(b);
    let a = black_box(Box::new(A16([1, 2, 3])));
    let got = &*a as *const A16 as usize;
    assert_eq!(got, at, "the freed block is reused");
    assert_eq!(got % 16, 0);
    assert_eq!(a.0, [1, 2, 3]);
    // Stronger than 16: a fresh block, aligned as asked, even when the free block on top of its
    // class is not. Find a 128-byte block that is not 64-aligned (32-byte blocks in between
    // shift where fresh ones start), free it, then ask for 128 bytes aligned to 64.
    let mut held: Vec<Box<[u8]>> = Vec::new();
    let mut odd = None;
    for _ in 0..10_000 {
        held.push(black_box(Box::new([0u8; 20])));
        let b = black_box(Box::new([9u8; 128]));
        if &*b as *const [u8; 128] as usize % 64 != 0 {
            odd = Some(b);
            break;
        }
        held.push(b);
    }
    assert!(odd.is_some(), "no 128-byte block that is not 64-aligned");
    let Some(odd) = odd else { return };
    let at = &*odd as *const [u8; 128] as usize;
    drop(odd);
    let b = black_box(Box::new(A64([5; 100])));
    let got = &*b as *const A64 as usize;
    assert_ne!(got, at);
    assert_eq!(got % 64, 0);
    assert!(b.0.iter().all(|x| *x == 5));
    drop(held);
}

#[wasm_bindgen_test]
fn growing_a_vector_across_classes_and_pages_keeps_its_contents() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..300_000u32 {
        v.push(i.wrapping_mul(2_654_435_761));
    }
    assert!(v
        .iter()
        .enumerate()
        .all(|(i, x)| *x == (i as u32).wrapping_mul(2_654_435_761)));
    // Shrinking to a smaller class, then growing again.
    v.truncate(10);
    v.shrink_to_fit();
    v.extend(0..1_000);
    assert_eq!(v.get(9), Some(&9u32.wrapping_mul(2_654_435_761)));
    assert_eq!(v.len(), 1_010);
    // Growing within a class keeps the block (and what is in it).
    let mut s = black_box(String::with_capacity(9));
    s.push_str("123456789");
    let at = s.as_ptr() as usize;
    s.reserve_exact(5);
    assert!(s.capacity() >= 14);
    assert_eq!((s.as_ptr() as usize, s.as_str()), (at, "123456789"));
    s.push_str("abcdefgh");
    assert_eq!(s, "123456789abcdefgh");
    // A block of several pages at once.
    let big = black_box(std::vec![3u8; 5 * 65_536]);
    assert!(big.iter().all(|x| *x == 3));
}

#[wasm_bindgen_test]
fn the_same_work_again_takes_no_more_memory() {
    let work = || {
        let mut all: Vec<String> = Vec::new();
        for i in 0..2_000usize {
            let mut s = String::new();
            for _ in 0..(i % 300) {
                s.push('x');
            }
            all.push(s);
            if i % 3 == 0 {
                all.swap_remove(i / 7 % all.len());
            }
        }
        all.iter().map(String::len).sum::<usize>()
    };
    let first = work();
    let after_first = pages();
    for _ in 0..20 {
        assert_eq!(work(), first);
    }
    assert_eq!(
        pages(),
        after_first,
        "memory grew while the same work was repeated"
    );
}
