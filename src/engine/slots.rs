//! Small maps and sets for the engine's bookkeeping, on a `Vec`: `BTreeMap`'s node code costs
//! ~5 KB of wasm per key/value pair of types, and the engine holds few entries of each at a time
//! (operations in flight, calls, keys being sent).

use alloc::string::String;
use alloc::vec::Vec;

use super::Id;

/// Values by id, kept in id order (ids only grow, so inserts append).
pub struct IdMap<V> {
    items: Vec<(Id, V)>,
}

impl<V> Default for IdMap<V> {
    fn default() -> Self {
        IdMap { items: Vec::new() }
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
                    slot.1 = v;
                }
            }
            Err(i) => self.items.insert(i, (id, v)),
        }
    }

    pub fn get(&self, id: &Id) -> Option<&V> {
        self.find(*id)
            .ok()
            .and_then(|i| self.items.get(i))
            .map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut V> {
        let i = self.find(*id).ok()?;
        self.items.get_mut(i).map(|(_, v)| v)
    }

    pub fn remove(&mut self, id: &Id) -> Option<V> {
        let i = self.find(*id).ok()?;
        Some(self.items.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Id, &V)> {
        self.items.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Id> {
        self.items.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.items.iter().map(|(_, v)| v)
    }
}

/// A set of keys, in insertion order.
#[derive(Default)]
pub struct KeySet {
    items: Vec<String>,
}

impl KeySet {
    pub fn contains(&self, k: &str) -> bool {
        self.items.iter().any(|x| x == k)
    }

    pub fn insert(&mut self, k: String) {
        if !self.contains(&k) {
            self.items.push(k);
        }
    }

    pub fn remove(&mut self, k: &str) {
        if let Some(i) = self.items.iter().position(|x| x == k) {
            self.items.swap_remove(i);
        }
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
