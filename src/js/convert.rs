//! JavaScript values → [`Value`], defensively: every read can throw (getters, Proxies), strings
//! can hold lone surrogates, objects can be cyclic or enormous. Whatever JSON cannot carry
//! becomes [`Value::Bad`] where it was found; the core turns that into a `TrackError` naming the
//! field. Nothing here panics or lets an exception through.

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{JsString, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use super::sys;
use crate::value::{Bad, Value, MAX_DEPTH};

/// Converts `v`, reading at most about `budget` bytes of strings and keys before stopping with
/// [`Bad::TooLarge`] (so a 10 MB string is refused without being copied into wasm).
pub fn to_value(v: &JsValue, budget: usize) -> Value {
    let mut cx = Cx {
        budget,
        ancestors: Vec::new(),
        object_proto: Reflect::get_prototype_of(&js_sys::Object::new())
            .map(JsValue::from)
            .unwrap_or(JsValue::NULL),
    };
    cx.convert(v)
}

struct Cx {
    budget: usize,
    ancestors: Vec<JsValue>,
    object_proto: JsValue,
}

impl Cx {
    fn spend(&mut self, n: usize) -> bool {
        if n > self.budget {
            self.budget = 0;
            false
        } else {
            self.budget -= n;
            true
        }
    }

    fn string(&mut self, v: &JsValue) -> Value {
        let s: &JsString = v.unchecked_ref();
        if !self.spend(s.length() as usize) {
            return Value::Bad(Bad::TooLarge);
        }
        // The conversion writes a lone surrogate as U+FFFD (UTF-8 EF BF BD); only a string
        // with an EF byte (U+F000..U+FFFF) is walked, one call into JS per UTF-16 unit, to
        // tell a lone surrogate from a real character.
        let r = String::from(s);
        if r.as_bytes().contains(&0xEF) && !s.is_valid_utf16() {
            return Value::Bad(Bad::LoneSurrogate);
        }
        Value::Str(r)
    }

    fn convert(&mut self, v: &JsValue) -> Value {
        if v.is_undefined() {
            return Value::Undefined;
        }
        if v.is_null() {
            return Value::Null;
        }
        if let Some(b) = v.as_bool() {
            return Value::Bool(b);
        }
        if let Some(n) = v.as_f64() {
            return Value::Num(n);
        }
        if v.is_string() {
            return self.string(v);
        }
        if v.is_function() {
            return Value::Bad(Bad::Function);
        }
        if v.is_symbol() {
            return Value::Bad(Bad::Symbol);
        }
        if v.is_bigint() {
            return Value::Bad(Bad::BigInt);
        }
        if !v.is_object() {
            return Value::Bad(Bad::NotPlain);
        }
        if self.ancestors.iter().any(|a| a == v) {
            return Value::Bad(Bad::Cycle);
        }
        if self.ancestors.len() > MAX_DEPTH {
            return Value::Bad(Bad::TooDeep);
        }
        if !self.spend(8) {
            return Value::Bad(Bad::TooLarge);
        }
        self.ancestors.push(v.clone());
        let out = self.container(v);
        self.ancestors.pop();
        out
    }

    fn container(&mut self, v: &JsValue) -> Value {
        match sys::is_array(v) {
            Err(_) => return Value::Bad(Bad::Threw),
            Ok(true) => {
                let len = match Reflect::get(v, &JsValue::from_str("length")).map(|l| l.as_f64()) {
                    Ok(Some(n)) if n >= 0.0 => n as usize,
                    _ => return Value::Bad(Bad::Threw),
                };
                if len > self.budget {
                    return Value::Bad(Bad::TooLarge);
                }
                let mut items = Vec::with_capacity(len.min(1024));
                for i in 0..len {
                    let item = match Reflect::get_u32(v, i as u32) {
                        Ok(x) => self.convert(&x),
                        Err(_) => Value::Bad(Bad::Threw),
                    };
                    let stop = matches!(item, Value::Bad(Bad::TooLarge));
                    items.push(item);
                    if stop {
                        break;
                    }
                }
                return Value::Arr(items);
            }
            Ok(false) => {}
        }
        match Reflect::get_prototype_of(v) {
            Ok(p) if p.is_null() || *p == self.object_proto => {}
            Ok(_) => return Value::Bad(Bad::NotPlain),
            Err(_) => return Value::Bad(Bad::Threw),
        }
        let Ok(keys) = sys::object_keys(v) else {
            return Value::Bad(Bad::Threw);
        };
        let mut members = Vec::with_capacity(keys.length().min(256) as usize);
        for key in keys.iter() {
            let name = match self.string(&key) {
                Value::Str(s) => s,
                bad => {
                    members.push((String::new(), bad));
                    break;
                }
            };
            let item = match Reflect::get(v, &key) {
                Ok(x) => self.convert(&x),
                Err(_) => Value::Bad(Bad::Threw),
            };
            let stop = matches!(item, Value::Bad(Bad::TooLarge));
            members.push((name, item));
            if stop {
                break;
            }
        }
        Value::Obj(members)
    }
}
