//! The builtin `permissions` policy's rules in plain Rust: the same
//! matching (the SDK's `glob_match`) and the same reasons, for comparing
//! the sandboxed policy with native code in one run.

/// `(allowed, reasons)` for `agent` holding `grants` (resource pattern and
/// actions) asking for `action` on `resource` (`type:id`).
pub fn decide<'a, G, A>(agent: &str, grants: G, resource: &str, action: &str) -> (bool, Vec<String>)
where
    G: IntoIterator<Item = (&'a str, A)>,
    A: IntoIterator<Item = &'a str>,
{
    let mut without_action = Vec::new();
    for (pattern, actions) in grants {
        if !ward_policy::glob_match(pattern, resource) {
            continue;
        }
        if actions.into_iter().any(|a| a == action || a == "*") {
            return (
                true,
                vec![format!("`{pattern}` grants `{action}` on `{resource}`")],
            );
        }
        without_action.push(pattern);
    }
    let reason = if without_action.is_empty() {
        format!("no permission of agent `{agent}` matches `{resource}`")
    } else {
        format!(
            "`{}` matches `{resource}` but does not grant `{action}`",
            without_action.join("`, `")
        )
    };
    (false, vec![reason])
}
