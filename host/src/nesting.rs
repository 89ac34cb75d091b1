//! One bound on how deeply JSON may nest, checked at every door: request
//! bodies (management and decisions), data documents, policy config and
//! decision context, and what a policy returns.
//!
//! Whatever Ward accepts it stores wrapped in a few levels of its own (a
//! data document inside its record, a decision's context inside its audit
//! entry inside a chunk), and it hands documents to policies whose JSON
//! readers have limits of their own (serde_json stops at 128). Accepting at
//! most [`MAX_DEPTH`] levels leaves room for every such wrapper; the store's
//! reader does not rely on it (see [`crate::store::decode`]).

/// The deepest nesting of arrays and objects Ward accepts in any JSON it is
/// given. `{"a": [1]}` is two levels deep; a scalar is zero.
pub const MAX_DEPTH: usize = 64;

/// JSON nested deeper than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("JSON nests deeper than {limit} levels of arrays and objects")]
pub struct TooDeep {
    /// The limit that was passed.
    pub limit: usize,
}

/// Checks that the JSON text `bytes` nests at most `limit` levels deep.
///
/// A single pass over the bytes that looks only at brackets outside
/// strings, so it costs far less than parsing and never recurses; it does
/// not check that the text is valid JSON (the parser that follows does).
pub fn check_depth(bytes: &[u8], limit: usize) -> Result<(), TooDeep> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(TooDeep { limit });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// [`check_depth`] with [`MAX_DEPTH`].
pub fn check(bytes: &[u8]) -> Result<(), TooDeep> {
    check_depth(bytes, MAX_DEPTH)
}

/// How deeply a parsed value nests, without recursion.
pub fn value_depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, above)) = pending.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        let depth = above + 1;
        deepest = deepest.max(depth);
        pending.extend(children.map(|child| (child, depth)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn counts_arrays_and_objects_but_not_brackets_in_strings() {
        assert_eq!(check_depth(b"1", 0), Ok(()));
        assert_eq!(check_depth(b"{\"a\": [1]}", 2), Ok(()));
        assert_eq!(check_depth(b"{\"a\": [1]}", 1), Err(TooDeep { limit: 1 }));
        assert_eq!(check_depth(br#"{"a": "[[[[\"{{{"}"#, 1), Ok(()));
        assert_eq!(check_depth(br#"["\\", [[]]]"#, 3), Ok(()));
        assert_eq!(
            check_depth(br#"["\\", [[]]]"#, 2),
            Err(TooDeep { limit: 2 })
        );
    }

    #[test]
    fn the_limit_is_inclusive() {
        assert!(check(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert!(check(nested(MAX_DEPTH + 1).as_bytes()).is_err());
        // Closing brackets do not make room for more opening ones deeper.
        let wide = format!("[{}, {}]", nested(MAX_DEPTH - 1), nested(MAX_DEPTH - 1));
        assert!(check(wide.as_bytes()).is_ok());
    }

    #[test]
    fn value_depth_agrees_with_the_text_check() {
        for levels in [0, 1, 2, 63, 64, 65, 200] {
            let text = if levels == 0 {
                String::from("7")
            } else {
                nested(levels)
            };
            let mut reader = serde_json::Deserializer::from_str(&text);
            reader.disable_recursion_limit();
            let value: serde_json::Value =
                serde::Deserialize::deserialize(serde_stacker::Deserializer::new(&mut reader))
                    .unwrap();
            assert_eq!(value_depth(&value), levels);
            assert_eq!(check(text.as_bytes()).is_ok(), levels <= MAX_DEPTH);
        }
    }
}
