//! `floor`, `ceil` and `fract` without std (the wasm build is `no_std`: core has no float
//! rounding on stable Rust). The same code runs natively, where a test checks it against std's.

/// From 2^52 on, every `f64` is an integer.
const INTEGRAL: f64 = 4_503_599_627_370_496.0;

/// `x` rounded toward zero (`f64::trunc`).
pub fn trunc(x: f64) -> f64 {
    if x.abs() < INTEGRAL {
        // Exact: |x| < 2^52 fits an i64. `copysign` keeps −0.0 for −0.5.
        (x as i64 as f64).copysign(x)
    } else {
        x // NaN, ±∞, and values that are integers already
    }
}

/// `x` rounded toward −∞ (`f64::floor`).
pub fn floor(x: f64) -> f64 {
    let t = trunc(x);
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// `x` rounded toward +∞ (`f64::ceil`).
pub fn ceil(x: f64) -> f64 {
    -floor(-x)
}

/// `x` minus its integer part (`f64::fract`).
pub fn fract(x: f64) -> f64 {
    x - trunc(x)
}

#[cfg(all(test, not(target_arch = "wasm32")))] // proptest does not build for wasm32
mod tests {
    use proptest::prelude::*;

    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    fn check(x: f64) {
        assert!(same(super::trunc(x), x.trunc()), "trunc {x}");
        assert!(same(super::floor(x), x.floor()), "floor {x}");
        assert!(same(super::ceil(x), x.ceil()), "ceil {x}");
        assert!(same(super::fract(x), x.fract()), "fract {x}");
    }

    #[test]
    fn edges_match_std() {
        for x in [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            -1.0,
            1.5,
            -1.5,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            4_503_599_627_370_495.5,
            -4_503_599_627_370_495.5,
            4_503_599_627_370_496.0,
            9_007_199_254_740_993.0,
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            1_733_000_000_000.25,
        ] {
            check(x);
        }
    }

    proptest! {
        #[test]
        fn any_bits_match_std(bits in any::<u64>()) {
            check(f64::from_bits(bits));
        }

        #[test]
        fn small_values_match_std(x in -1e7f64..1e7) {
            check(x);
        }
    }
}
