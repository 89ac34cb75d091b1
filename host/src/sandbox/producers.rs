//! Which language built a component, from its `producers` custom sections
//! (the WebAssembly tool conventions). Toolchains that wrap an interpreter
//! (componentize-js, componentize-py) name the language of the author's
//! code on the component itself; compilers (rustc) name theirs on the core
//! module they emit. The component's own section wins.

use wasmparser::{KnownCustom, Parser, Payload};

/// Longest language name recorded.
const MAX_LANGUAGE_BYTES: usize = 32;

/// The language named by the component's producers, if any sensible one:
/// the first `language` value of the outermost producers section that has
/// one. A name that is not short printable ASCII is ignored rather than
/// recorded, as anything else a module says about itself.
pub fn language(bytes: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    let mut best: Option<(usize, String)> = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            break;
        };
        match payload {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) => {
                if best.as_ref().is_some_and(|(at, _)| *at <= depth) {
                    continue;
                }
                let KnownCustom::Producers(reader) = section.as_known() else {
                    continue;
                };
                let found = reader
                    .into_iter()
                    .filter_map(Result::ok)
                    .filter(|field| field.name == "language")
                    .flat_map(|field| field.values.into_iter().filter_map(Result::ok))
                    .map(|value| value.name)
                    .find(|name| sensible(name));
                if let Some(name) = found {
                    best = Some((depth, name.to_string()));
                }
            }
            _ => {}
        }
    }
    best.map(|(_, name)| name)
}

fn sensible(name: &str) -> bool {
    (1..=MAX_LANGUAGE_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+#._- ".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_names_are_not_languages() {
        assert!(sensible("JavaScript"));
        assert!(sensible("C_plus_plus_14"));
        assert!(!sensible(""));
        assert!(!sensible("a\nb"));
        assert!(!sensible(&"x".repeat(33)));
    }

    #[test]
    fn bytes_that_are_not_wasm_name_no_language() {
        assert_eq!(language(b"not wasm at all"), None);
        assert_eq!(language(&[]), None);
    }
}
