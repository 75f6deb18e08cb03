//! Deterministic simulation of the delivery engine (issue #13), the way FoundationDB and
//! TigerBeetle's VOPR test: one seed drives a whole world — tabs sharing one durable store, each
//! running the real [`Engine`](autumn_track::engine::Engine); a network; a simulated Autumn with
//! its real claim rules (claimed when a request starts, held while it runs, released when it
//! fails, batch items dropped silently when claimed, 10 batch requests a second, 24 h keys,
//! future timestamps refused); and faults: slow requests that outlive the client, claims held
//! then failed, recorded-then-dropped connections, a proxy answering 502 while Autumn goes on,
//! redirects, resets, outages, a key that stops working for a while, offline spells, a full
//! storage quota, pages that die between any two steps and reload, time passing for hours,
//! device clocks set back or forward.
//!
//! Checked on every step: Autumn records each key at most once; a `delivered` or `duplicate` told
//! to a caller (or reported by a drain) is backed by a recording, done or certain to come; a
//! refusal told to a caller is not; a `queued` event is in a store. At the end, with the network
//! and Autumn back: every event is recorded, or a dead letter, or was refused to its caller —
//! nothing left queued or in flight.
//!
//! `SIM_EVENTS` (default 20,000) bounds the events of a run; CI runs 1,000,000 in release
//! (`scripts/test.sh`, step `sim`). A failure prints its seed; `SIM_SEED=<seed> cargo test
//! --release --test simulation` replays exactly that world.
#![cfg(not(target_arch = "wasm32"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "sim/server.rs"]
mod server;
#[path = "sim/store.rs"]
mod store;
#[path = "sim/world.rs"]
mod world;

use world::{Shape, World};

/// splitmix64.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn world(seed: u64, mutant: Option<&'static str>) -> World {
    let mut r = Rng(seed ^ 0xA5A5_5A5A);
    let events = 20 + r.below(300) as usize;
    let shape = Shape::draw(&mut r, events);
    World::new(seed, shape, mutant)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_world_keeps_every_event_exactly_once() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.parse().expect("SIM_SEED is a number");
        let mut w = world(seed, None);
        let v = w.run();
        assert!(v.is_empty(), "seed {seed}:\n{}", v.join("\n"));
        return;
    }
    let budget = env("SIM_EVENTS", 20_000) as usize;
    let base = env("SIM_BASE_SEED", 1);
    let t0 = std::time::Instant::now();
    let (mut events, mut worlds, mut steps) = (0usize, 0u64, 0u64);
    let mut seed = base;
    while events < budget {
        let mut w = world(seed, None);
        let v = w.run();
        assert!(
            v.is_empty(),
            "seed {seed} failed (replay: SIM_SEED={seed} cargo test --release --test simulation):\n{}",
            v.join("\n")
        );
        events += w.tracked;
        steps += w.steps;
        worlds += 1;
        seed += 1;
    }
    println!(
        "simulation: {events} events in {worlds} worlds ({steps} engine commands), seeds {base}..{seed}, {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// The simulation would have found the exactly-once holes: each mutant makes the driver behave
/// like one of them, and some world fails within a few hundred seeds.
fn finds(mutant: &'static str) -> u64 {
    for seed in 1..3_000 {
        let mut w = world(seed, Some(mutant));
        if !w.run().is_empty() {
            return seed;
        }
    }
    panic!("no world caught mutant {mutant}");
}

#[test]
fn a_409_taken_as_proof_while_an_earlier_attempt_may_run_is_caught() {
    let seed = finds("no_window");
    println!("no_window caught by seed {seed}");
}

#[test]
fn a_redirect_taken_as_a_delivery_is_caught() {
    let seed = finds("redirect_is_delivery");
    println!("redirect_is_delivery caught by seed {seed}");
}

#[test]
fn two_drains_at_once_are_caught() {
    let seed = finds("no_lock");
    println!("no_lock caught by seed {seed}");
}
