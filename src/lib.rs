//! # autumn-track
//!
//! Usage tracking for the [Autumn](https://useautumn.com) billing API, compiled to WebAssembly
//! and published as one npm package for browsers, Node and Cloudflare Workers.
//!
//! Every event is validated before anything is sent, gets one idempotency key (UUID v7) that
//! every retry and replay reuses, and is delivered through `fetch` with retries that honour
//! `Retry-After`: the server records each event exactly once.
//!
//! The crate is a pure core that `cargo test` runs natively — [`value`] (input as a JSON tree),
//! [`decode`] (JavaScript values as the edge's encoder writes them),
//! [`event`] (validation and the wire body), [`key`] (idempotency keys), [`answer`] (what an
//! answer means), [`retry`] (when to try again), [`queue`] (records, plans, clocks),
//! [`options`], and [`engine`], the sans-IO delivery engine whose commands a driver carries out
//! ([`consumer`] is the Cloudflare Queues consumer's) — under a thin JavaScript edge (`js`,
//! compiled for `wasm32` only) that holds every `#[wasm_bindgen]` export and converts values.
//!
//! The wasm build is `no_std` (alloc only): std's panic and formatting machinery cost 3.6 KB of
//! the download. Natively, and in the wasm test suites (feature `std`), std is linked.
#![cfg_attr(all(target_arch = "wasm32", not(feature = "std")), no_std)]

extern crate alloc;

pub mod answer;
pub mod consumer;
pub mod decode;
pub mod engine;
pub mod error;
pub mod event;
pub mod float;
#[doc(hidden)]
pub mod heap;
pub mod key;
pub mod options;
pub mod queue;
pub mod retry;
pub mod value;

#[cfg(target_arch = "wasm32")]
mod js;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub use js::{codec as __codec, new_key_now as __new_key, Engine as __Engine};

pub use error::{Code, TrackError};
pub use event::{parse_input, wire_body, Event};
pub use options::{parse_options, Options};

/// Size classes (`heap`) instead of std's dlmalloc or talc: see there.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOC: heap::Heap = heap::Heap::new();
