//! Decoding rules for environment values (bool, unsigned int, float) and reading raw variables.
//!
//! These follow upstream unidist's rules where they are sound and are stricter where upstream is
//! sloppy: upstream accepts any string as `false` from the environment and turns `put("false")`
//! into `True`; here a bool is one of six words and anything else is an error.

use std::env;

use crate::error::{ConfigError, Result};

/// The words accepted as `true` (compared after trimming and lowercasing).
const TRUE_WORDS: [&str; 3] = ["true", "yes", "1"];
/// The words accepted as `false` (compared after trimming and lowercasing).
const FALSE_WORDS: [&str; 3] = ["false", "no", "0"];

/// What a bool variable accepts, for error messages.
pub(crate) const BOOL_EXPECTED: &str = "one of true, yes, 1, false, no, 0 (case-insensitive)";

/// Reads `variable` from the environment.
///
/// Returns `Ok(None)` when it is unset and the trimmed value otherwise. An empty or
/// whitespace-only value, or one that is not UTF-8, is an error rather than "unset" so that a
/// broken assignment does not silently fall back to the default.
pub(crate) fn raw_env(variable: &str, expected: &str) -> Result<Option<String>> {
    let Some(raw) = env::var_os(variable) else {
        return Ok(None);
    };
    let Some(raw) = raw.to_str() else {
        return Err(ConfigError::invalid(
            variable,
            raw.to_string_lossy(),
            &format!("{expected} (the value is not valid UTF-8)"),
        ));
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::EmptyValue {
            variable: variable.to_owned(),
            value: raw.to_owned(),
            expected: expected.to_owned(),
        });
    }
    Ok(Some(trimmed.to_owned()))
}

/// Parses a bool word: `true/yes/1` or `false/no/0`, any case, surrounding whitespace ignored.
pub(crate) fn parse_bool(raw: &str) -> Option<bool> {
    let word = raw.trim().to_ascii_lowercase();
    if TRUE_WORDS.contains(&word.as_str()) {
        Some(true)
    } else if FALSE_WORDS.contains(&word.as_str()) {
        Some(false)
    } else {
        None
    }
}

/// Parses an unsigned decimal integer: ASCII digits only after trimming.
///
/// A sign is rejected (even `+`) because every integer parameter is unsigned; a negative number
/// must not wrap or be clamped. Overflow of `u64` gives `None`.
pub(crate) fn parse_uint(raw: &str) -> Option<u64> {
    let digits = raw.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parses a finite decimal float: optional sign, digits with an optional fraction (`2.`, `.5`),
/// and an optional exponent (`1e-4`).
///
/// The grammar is checked by hand first because `f64::from_str` also accepts `inf`, `nan` and
/// `infinity`, which are never meaningful configuration values. Values that overflow to
/// infinity (`1e999`) are rejected too.
pub(crate) fn parse_float(raw: &str) -> Option<f64> {
    let s = raw.trim();
    if !is_decimal_float(s) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Whether `s` matches `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`.
fn is_decimal_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let skip_digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut mantissa_digits = skip_digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        mantissa_digits += skip_digits(&mut i);
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if skip_digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Encodes a float so that [`parse_float`] gives exactly the same value back.
///
/// `Display` for `f64` prints the shortest decimal that round-trips and never uses `inf`/`nan`
/// for finite values, which is what workers spawned with forwarded variables need.
pub(crate) fn encode_float(v: f64) -> String {
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bool_accepts_six_words_in_any_case_and_whitespace() {
        for raw in [
            "true", "TRUE", "True", "yes", "YeS", "1", "  true ", "\tyes\n", " 1 ",
        ] {
            assert_eq!(parse_bool(raw), Some(true), "{raw:?}");
        }
        for raw in [
            "false", "FALSE", "False", "no", "NO", "0", " false ", "\tno\n", " 0",
        ] {
            assert_eq!(parse_bool(raw), Some(false), "{raw:?}");
        }
    }

    #[test]
    fn bool_rejects_everything_else() {
        for raw in [
            "maybe", "", " ", "on", "off", "y", "n", "t", "f", "2", "-1", "01", "truee", "no no",
        ] {
            assert_eq!(parse_bool(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn uint_accepts_trimmed_decimal_digits() {
        assert_eq!(parse_uint("0"), Some(0));
        assert_eq!(parse_uint("42"), Some(42));
        assert_eq!(parse_uint("  42\t"), Some(42));
        assert_eq!(parse_uint("007"), Some(7));
        assert_eq!(parse_uint("18446744073709551615"), Some(u64::MAX));
    }

    #[test]
    fn uint_rejects_signs_fractions_hex_and_overflow() {
        for raw in [
            "",
            " ",
            "-1",
            "+1",
            "1.0",
            "1e3",
            "0x10",
            "abc",
            "4 2",
            "1_000",
            "١",
            "18446744073709551616",
        ] {
            assert_eq!(parse_uint(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn float_accepts_decimal_forms() {
        let cases = [
            ("0", 0.0),
            ("1", 1.0),
            ("0.0001", 0.0001),
            ("1e-4", 1e-4),
            ("1E-4", 1e-4),
            ("1e+2", 100.0),
            (".5", 0.5),
            ("2.", 2.0),
            ("-0.5", -0.5),
            ("+3.25", 3.25),
            ("  2.5e0 ", 2.5),
            ("5.e1", 50.0),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_float(raw), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn float_rejects_non_decimal_and_non_finite() {
        for raw in [
            "", " ", ".", "-", "+", "e5", ".e5", "1e", "1e+", "1.2.3", "nan", "NaN", "inf", "-inf",
            "infinity", "0x1p3", "0x10", "1,5", "1 e5", "abc", "1e999", "--1", "1f",
        ] {
            assert_eq!(parse_float(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn float_encoding_round_trips() {
        for v in [
            0.0,
            -0.0,
            1e-4,
            0.1,
            1.0 / 3.0,
            10.0,
            5e-324,
            1e-300,
            123_456.789,
            f64::MAX,
        ] {
            let encoded = encode_float(v);
            assert_eq!(parse_float(&encoded), Some(v), "{v} encoded as {encoded:?}");
        }
    }
}
