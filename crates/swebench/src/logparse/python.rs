//! Python's string semantics where the harness's parsers rely on them: `str.split()` and
//! `str.strip()` treat the ASCII separators U+001C..U+001F as whitespace, which Rust's
//! `char::is_whitespace` does not. Everything else about Unicode whitespace agrees.

/// `str.isspace()` for one character.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s.split()`: the words between runs of whitespace.
pub(crate) fn words(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_space).filter(|w| !w.is_empty())
}

/// `s.strip()`.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `s.lstrip()`.
pub(crate) fn lstrip(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_count_as_space_like_python() {
        assert_eq!(
            words("a\u{1f}b  c\u{a0}d").collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(strip("\u{1c} x \r"), "x");
        assert_eq!(lstrip("\t ok "), "ok ");
    }
}
