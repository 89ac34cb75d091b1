/// Whether `text` matches `pattern`, in which `*` stands for any run of
/// characters (including none) and every other character for itself.
///
/// Runs in `O(pattern × text)` time at worst and allocates nothing, so a
/// hostile pattern such as `*a*a*a*a*b` cannot blow up.
///
/// ```
/// use ward_policy::glob_match;
/// assert!(glob_match("reports:*", "reports:q3"));
/// assert!(glob_match("*:q*", "reports:q3"));
/// assert!(!glob_match("reports:*", "invoices:q3"));
/// ```
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let text = text.as_bytes();
    let (mut p, mut t) = (0, 0);
    // Where to resume after the most recent `*`: (pattern index after it,
    // text index it is currently assumed to cover up to).
    let mut resume: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                resume = Some((p + 1, t));
                p += 1;
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match resume {
                Some((after_star, covered)) => {
                    p = after_star;
                    t = covered + 1;
                    resume = Some((after_star, covered + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(glob_match("reports:q3", "reports:q3"));
        assert!(!glob_match("reports:q3", "reports:q4"));
        assert!(!glob_match("reports:q3", "reports:q3x"));
        assert!(!glob_match("reports:q3x", "reports:q3"));
        assert!(glob_match("", ""));
        assert!(!glob_match("", "a"));
    }

    #[test]
    fn stars_match_any_run_anywhere() {
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything:at all"));
        assert!(glob_match("reports:*", "reports:"));
        assert!(glob_match("*:q3", "reports:q3"));
        assert!(glob_match("re*s:*3", "reports:q3"));
        assert!(glob_match("**", "x"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
        assert!(!glob_match("reports:*", "report:q3"));
        assert!(glob_match("*a", "aaa"));
        assert!(!glob_match("*ab", "aaa"));
    }

    #[test]
    fn hostile_patterns_finish() {
        let text = "a".repeat(4096);
        let pattern = format!("{}b", "*a".repeat(64));
        assert!(!glob_match(&pattern, &text));
    }

    #[test]
    fn multibyte_text_is_matched_bytewise_without_panicking() {
        assert!(glob_match("doc:*", "doc:été"));
        assert!(glob_match("doc:é*", "doc:été"));
        assert!(!glob_match("doc:e*", "doc:été"));
    }
}
