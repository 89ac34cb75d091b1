//! What names, slugs and keys may look like.

use super::RegistryError;

/// Slugs that would be confusing or collide with routes and scopes.
const RESERVED_SLUGS: &[&str] = &[
    "global",
    "admin",
    "api",
    "access",
    "default",
    "healthz",
    "metrics",
    "openapi",
    "operator",
    "readyz",
    "root",
    "system",
    "tenant",
    "tenants",
    "v1",
    "ward",
    "well-known",
];

/// `^[a-z0-9]+(?:-[a-z0-9]+)*$`, 1–63 characters, not reserved.
pub(crate) fn check_slug(slug: &str) -> Result<(), RegistryError> {
    let well_formed = (1..=63).contains(&slug.len())
        && slug.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !well_formed {
        return Err(RegistryError::Invalid(format!(
            "slug `{}` must be 1-63 lowercase letters, digits and single inner hyphens",
            clip(slug)
        )));
    }
    if RESERVED_SLUGS.contains(&slug) || slug.starts_with("tnt-") {
        return Err(RegistryError::Invalid(format!("slug `{slug}` is reserved")));
    }
    Ok(())
}

/// Agent, policy and data names: 1–256 printable characters, no
/// whitespace.
pub(crate) fn check_name(what: &str, name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 256
        && name.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(format!(
            "{what} name `{}` must be 1-256 printable characters without whitespace",
            clip(name)
        )))
    }
}

/// Display names: 1–200 characters, no control characters.
pub(crate) fn check_display_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.trim().is_empty()
        && name.chars().count() <= 200
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid(String::from(
            "name must be 1-200 characters without control characters",
        )))
    }
}

/// User input quoted in an error message, cut to a readable length.
pub(crate) fn clip(text: &str) -> String {
    let mut clipped: String = text.chars().take(64).filter(|c| !c.is_control()).collect();
    if text.chars().count() > 64 {
        clipped.push('…');
    }
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for good in ["acme", "a", "acme-corp", "a1-b2-c3", &"x".repeat(63)] {
            assert!(check_slug(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Acme",
            "acme_corp",
            "-acme",
            "acme-",
            "ac--me",
            "acme corp",
            "émile",
            &"x".repeat(64),
            "global",
            "tnt-01",
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        for good in ["report-bot", "a", "reports/q3", "ünïcode", &"n".repeat(256)] {
            assert!(check_name("agent", good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "tab\there", "nul\0", &"n".repeat(257)] {
            assert!(check_name("agent", bad).is_err(), "{bad:?}");
        }
    }
}
