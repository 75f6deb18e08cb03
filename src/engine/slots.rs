//! Small maps and sets for the engine's bookkeeping, on a `Vec`: `BTreeMap`'s node code costs
//! ~5 KB of wasm per key/value pair of types, and the engine holds few entries of each at a time
//! (operations in flight, calls, keys being sent).

use alloc::string::String;
use alloc::vec::Vec;

use super::Id;
use crate::queue::Sent;

/// Values by id, kept in id order (ids only grow, so inserts append). A removed entry is left as
/// a hole and the holes are swept out once they are half the map: removing the oldest of 10,000
/// calls one by one would otherwise move the rest each time (a burst of offline `track()`s was
/// quadratic).
pub struct IdMap<V> {
    items: Vec<(Id, Option<V>)>,
    holes: usize,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap {
            items: Vec::new(),
            holes: 0,
        }
    }
}

impl<V> IdMap<V> {
    fn find(&self, id: Id) -> Result<usize, usize> {
        self.items.binary_search_by(|(k, _)| k.cmp(&id))
    }

    pub fn insert(&mut self, id: Id, v: V) {
        match self.find(id) {
            Ok(i) => {
                if let Some(slot) = self.items.get_mut(i) {
                    if slot.1.is_none() {
                        self.holes -= 1;
                    }
                    slot.1 = Some(v);
                }
            }
            Err(i) => self.items.insert(i, (id, Some(v))),
        }
    }

    /// How many entries (holes not counted).
    pub fn len(&self) -> usize {
        self.items.len() - self.holes
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &Id) -> Option<&V> {
        self.find(*id)
            .ok()
            .and_then(|i| self.items.get(i))
            .and_then(|(_, v)| v.as_ref())
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut V> {
        let i = self.find(*id).ok()?;
        self.items.get_mut(i).and_then(|(_, v)| v.as_mut())
    }

    pub fn remove(&mut self, id: &Id) -> Option<V> {
        let i = self.find(*id).ok()?;
        let v = self.items.get_mut(i)?.1.take()?;
        self.holes += 1;
        if self.holes * 2 > self.items.len() {
            self.items.retain(|(_, v)| v.is_some());
            self.holes = 0;
        }
        Some(v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Id, &V)> {
        self.items
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Id> {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Numbers by key (or a set of keys: [`KeySet`]): open addressing on a `Vec` (FNV-1a, linear
/// probing), so that the sets a drain of 10,000 records fills and empties one key at a time cost
/// O(1) per key — a `Vec` searched from the start made a drain quadratic. Deterministic (no random
/// seed): the simulation replays. One value type for every use: each other would be another copy
/// of this code in the wasm.
#[derive(Default)]
pub struct KeyMap {
    /// `None`: never used; `Some(None)`: a removed key (probing goes on past it).
    slots: Vec<Option<Option<(String, u64)>>>,
    len: usize,
    used: usize,
    /// Bumped by every insert, remove and clear that changed the map: tells a reader whether
    /// what it copied out is still the map (see `Engine::busy_keys`).
    changes: u64,
}

/// A set of keys (their values unused).
pub type KeySet = KeyMap;

fn fnv(k: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in k.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h as usize
}

impl KeyMap {
    /// The slot holding `k`, or where it would go.
    fn slot(&self, k: &str) -> (usize, bool) {
        let n = self.slots.len();
        let mut i = fnv(k) & (n - 1);
        let mut free = None;
        loop {
            match self.slots.get(i) {
                Some(Some(Some((x, _)))) if x == k => return (i, true),
                Some(Some(None)) => {
                    free.get_or_insert(i);
                }
                Some(None) | None => return (free.unwrap_or(i), false),
                Some(Some(Some(_))) => {}
            }
            i = (i + 1) & (n - 1);
        }
    }

    pub fn contains(&self, k: &str) -> bool {
        self.get(k).is_some()
    }

    pub fn get(&self, k: &str) -> Option<u64> {
        if self.slots.is_empty() {
            return None;
        }
        match self.slots.get(self.slot(k).0) {
            Some(Some(Some((x, v)))) if x == k => Some(*v),
            _ => None,
        }
    }

    pub fn insert(&mut self, k: String) {
        self.put(k, 0);
    }

    /// Sets `k`'s value (replacing one it had).
    pub fn put(&mut self, k: String, v: u64) {
        if (self.used + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let (i, found) = self.slot(&k);
        if let Some(s) = self.slots.get_mut(i) {
            if !found {
                if s.is_none() {
                    self.used += 1;
                }
                self.len += 1;
                self.changes += 1;
            }
            *s = Some(Some((k, v)));
        }
    }

    pub fn remove(&mut self, k: &str) {
        if self.slots.is_empty() {
            return;
        }
        if let (i, true) = self.slot(k) {
            if let Some(s) = self.slots.get_mut(i) {
                *s = Some(None);
                self.len -= 1;
                self.changes += 1;
            }
        }
    }

    /// Rebuilds with room for twice the keys (and without the removed ones).
    fn grow(&mut self) {
        let old = core::mem::take(&mut self.slots);
        let cap = ((self.len + 1) * 4).next_power_of_two().max(16);
        self.slots.resize_with(cap, || None);
        self.len = 0;
        self.used = 0;
        for (k, v) in old.into_iter().flatten().flatten() {
            self.put(k, v);
        }
    }

    pub fn clear(&mut self) {
        if self.len > 0 {
            self.changes += 1;
        }
        self.slots.clear();
        self.len = 0;
        self.used = 0;
    }

    /// How many times the map changed (see the field).
    pub fn changes(&self) -> u64 {
        self.changes
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().and_then(Option::as_ref).map(|(k, _)| k))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Keys sent without an answer not long ago, with when (see `Engine::recent`): the attempts in
/// the order they came, and each key's place among them — a drain's pass asks for each record it
/// loaded, and 10,000 records against a list of 4,096 searched from the end was quadratic.
#[derive(Default)]
pub struct Recent {
    /// Each key's latest attempt: its place in `order`.
    map: KeyMap,
    /// Keys and attempts, oldest first; a key remembered again leaves its earlier entry behind
    /// (no longer its place in `map`), dropped at the next sweep.
    order: Vec<(String, Sent)>,
}

impl Recent {
    pub fn get(&self, k: &str) -> Option<Sent> {
        let i = self.map.get(k)?;
        self.order.get(i as usize).map(|(_, s)| *s)
    }

    /// Remembers `sent` as `k`'s latest attempt.
    pub fn put(&mut self, k: &str, sent: Sent) {
        self.map.put(String::from(k), self.order.len() as u64);
        self.order.push((String::from(k), sent));
    }

    /// Keeps about `max` keys: over it, first drops every attempt `live` says is over, then the
    /// oldest, down to `max`. Swept only past a quarter over (or with as many stale entries as
    /// keys): one sweep per `max / 4` attempts remembered one by one, not one each; meanwhile
    /// more is remembered than `max`, never less.
    pub fn bound(&mut self, max: usize, live: impl Fn(&Sent) -> bool) {
        if self.map.len() <= max + max / 4 && self.order.len() <= 2 * max {
            return;
        }
        let (map, mut i) = (&self.map, 0);
        self.order.retain(|(k, s)| {
            let keep = map.get(k) == Some(i) && live(s);
            i += 1;
            keep
        });
        let over = self.order.len().saturating_sub(max);
        self.order.drain(..over);
        self.map.clear();
        for (i, (k, _)) in self.order.iter().enumerate() {
            self.map.put(k.clone(), i as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn a_key_set_holds_what_was_put_in_and_not_what_was_taken_out() {
        let mut s = KeySet::default();
        assert!(!s.contains("a") && s.is_empty());
        for i in 0..5_000 {
            s.insert(format!("01a3185c-{i}"));
        }
        s.insert("01a3185c-7".into());
        assert_eq!(s.len(), 5_000);
        for i in (0..5_000).step_by(2) {
            s.remove(&format!("01a3185c-{i}"));
        }
        s.remove("never");
        assert_eq!(s.len(), 2_500);
        assert_eq!(s.iter().count(), 2_500);
        for i in 0..5_000 {
            assert_eq!(s.contains(&format!("01a3185c-{i}")), i % 2 == 1, "{i}");
        }
        // Removed slots are reused, and the table does not fill with them.
        for round in 0..20 {
            for i in 0..1_000 {
                s.insert(format!("r{round}-{i}"));
            }
            for i in 0..1_000 {
                s.remove(&format!("r{round}-{i}"));
            }
        }
        assert_eq!(s.len(), 2_500);
        assert!(s.slots.len() <= 32_768, "{}", s.slots.len());
        s.clear();
        assert!(!s.contains("01a3185c-1") && s.is_empty());
    }

    fn sent(local: f64) -> Sent {
        Sent {
            local,
            server: None,
        }
    }

    #[test]
    fn recent_attempts_keep_the_latest_per_key_and_drop_the_ended_then_the_oldest() {
        let mut r = Recent::default();
        assert_eq!(r.get("a"), None);
        r.put("a", sent(1.0));
        r.put("b", sent(2.0));
        r.put("a", sent(3.0));
        assert_eq!(r.get("a"), Some(sent(3.0)));
        assert_eq!(r.get("b"), Some(sent(2.0)));
        // Under the bound nothing goes, not even an ended attempt (a lookup checks the window).
        r.bound(2, |_| false);
        assert_eq!(r.get("b"), Some(sent(2.0)));
        // Over it, the ended ones go first, wherever they are in the order…
        r.put("c", sent(4.0));
        r.bound(2, |t| t.local != 3.0);
        assert_eq!(
            (r.get("a"), r.get("b"), r.get("c")),
            (None, Some(sent(2.0)), Some(sent(4.0)))
        );
        // … then the oldest of those still running.
        r.put("d", sent(5.0));
        r.bound(2, |_| true);
        assert_eq!(
            (r.get("b"), r.get("c"), r.get("d")),
            (None, Some(sent(4.0)), Some(sent(5.0)))
        );
        // A key remembered over and over leaves stale places behind, swept out: the order stays
        // bounded and the latest attempt is the one kept.
        for i in 0..1_000 {
            r.put("c", sent(f64::from(i)));
            r.bound(2, |_| true);
        }
        assert!(r.order.len() <= 5, "{}", r.order.len());
        assert_eq!(
            (r.get("c"), r.get("d")),
            (Some(sent(999.0)), Some(sent(5.0)))
        );
        // 10,000 keys against a bound of 4,096: the newest 4,096 stay.
        for i in 0..10_000 {
            r.put(&format!("k{i}"), sent(f64::from(i)));
        }
        r.bound(4_096, |_| true);
        assert_eq!(r.map.len(), 4_096);
        assert_eq!(r.get("k5903"), None);
        assert_eq!(r.get("k5904"), Some(sent(5_904.0)));
        // One at a time, the map stays within its slack, and the newest stay.
        for i in 0..10_000 {
            r.put(&format!("j{i}"), sent(f64::from(i)));
            r.bound(4_096, |_| true);
            assert!(r.map.len() <= 5_120);
        }
        assert_eq!(r.get("j9999"), Some(sent(9_999.0)));
        assert_eq!(r.get("j5904"), Some(sent(5_904.0)));
        assert_eq!(r.get("k9999"), None);
        r.put("k9999", sent(9_999.0));
        assert_eq!(r.get("k9999"), Some(sent(9_999.0)));
    }
}
