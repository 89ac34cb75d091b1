//! JWT bearer tokens from configured issuers. Each issuer fixes its
//! algorithms and keys, so `alg: none` and algorithm confusion (an HS256
//! token "signed" with an RS256 public key) are refused by construction.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::AuthError;
use super::jwks::{KeyCache, KeyList, Location, Timing};
use crate::config::JwtIssuer;

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIdentity {
    /// The verified `iss` claim.
    pub issuer: String,
    /// The `sub` claim.
    pub subject: String,
    /// Roles from the issuer's roles claim.
    pub roles: Vec<String>,
    /// Whether the roles include the issuer's operator role and the
    /// issuer is trusted to grant it (`operator = true`).
    pub operator: bool,
    /// Tenants (slug or id) the bearer belongs to, with per-tenant roles
    /// when the token gives them.
    pub memberships: Vec<Membership>,
    /// When the token was issued (`iat`), in milliseconds.
    pub issued_at_ms: Option<u64>,
    /// What the issuer may do, from its configuration.
    pub bounds: Arc<IssuerBounds>,
}

/// What one issuer's tokens may do, set by configuration only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerBounds {
    /// The issuer, for messages: its `issuer` or `issuer_pattern`.
    pub name: String,
    /// Whether it may create unknown tenants on first sight.
    pub auto_provision: bool,
    /// The kind of the tenants it creates.
    pub provision_kind: ward_types::TenantKind,
    /// Slug patterns of the tenants its tokens may name (`None`: any).
    pub tenants: Option<Vec<String>>,
    /// Clock skew tolerated, in seconds.
    pub leeway_secs: u64,
    /// The header its callers name their tenant in (lower case).
    pub tenant_header: String,
    /// Whether that header is required.
    pub require_tenant_header: bool,
    /// The header naming the user a machine caller acts for.
    pub acting_user_header: Option<String>,
    /// Whether its users may create tenants of their own.
    pub self_service: bool,
    /// How many tenants one of its users may own.
    pub self_service_max_tenants: usize,
}

impl IssuerBounds {
    /// Whether tokens of this issuer may name the tenant `slug`.
    pub fn allows(&self, slug: &str) -> bool {
        self.tenants
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| wildcard_match(p, slug)))
    }
}

/// `pattern` with `*` matching any run of characters, against `text`.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty();
    };
    for middle in parts {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One tenant a token's bearer belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Slug or id.
    pub tenant: String,
    /// Roles in that tenant; `None` means the token's global roles.
    pub roles: Option<Vec<String>>,
}

/// Where an issuer's keys are.
enum Keys {
    /// One key (a secret or a PEM), for an exact issuer only.
    One(Arc<KeyList>),
    /// A JWKS file or URL read (and refreshed) when needed; under an
    /// `issuer_pattern`, its `{slug}` is the realm's.
    Set(Source),
}

enum Source {
    File(String),
    Url(String),
    Discovery,
}

struct Issuer {
    config: JwtIssuer,
    algorithms: Vec<Algorithm>,
    keys: Keys,
    bounds: Arc<IssuerBounds>,
    timing: Timing,
}

/// Verifies tokens against every configured issuer.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
    cache: KeyCache,
}

/// Errors loading issuer keys at start-up.
#[derive(Debug, thiserror::Error)]
#[error("JWT issuer `{issuer}`: {message}")]
pub struct IssuerError {
    issuer: String,
    message: String,
}

impl JwtVerifier {
    /// Loads every issuer's keys.
    pub fn new(issuers: &[JwtIssuer]) -> Result<Self, IssuerError> {
        let issuers = issuers
            .iter()
            .map(load_issuer)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JwtVerifier {
            issuers,
            cache: KeyCache::new(),
        })
    }

    /// The headers issuers' callers may send beside `Authorization`: each
    /// issuer's tenant header and acting-user header.
    pub fn headers(&self) -> Vec<(String, &'static str)> {
        let mut headers = Vec::new();
        for issuer in &self.issuers {
            let bounds = &issuer.bounds;
            headers.push((
                bounds.tenant_header.clone(),
                "The tenant a JWT of an issuer with this tenant_header acts in.",
            ));
            if let Some(acting) = &bounds.acting_user_header {
                headers.push((
                    acting.clone(),
                    "The user a machine caller acts for, recorded as on_behalf_of.",
                ));
            }
        }
        headers
    }

    /// Whether any issuer is configured.
    pub fn is_enabled(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// Verifies `token`: signature, algorithm, `exp`, `nbf`, `iss`, `aud`.
    pub fn verify(&self, token: &str) -> Result<JwtIdentity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            AuthError::InvalidToken(String::from("malformed or unsupported JWT header"))
        })?;
        // The claimed `iss` only chooses which issuer's keys to try; the
        // signature must then verify under exactly that issuer's keys, and
        // `iss` is checked again as a verified claim.
        let claimed_iss = jsonwebtoken::dangerous::insecure_decode_claims::<Value>(token)
            .ok()
            .and_then(|claims| {
                claims
                    .get("iss")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let mut last =
            AuthError::InvalidToken(String::from("no trusted issuer accepts this token"));
        for issuer in self
            .issuers
            .iter()
            .filter(|i| i.algorithms.contains(&header.alg))
        {
            let Some(realm) = issuer.realm(&claimed_iss) else {
                continue;
            };
            let keys = self.keys_of(issuer, &realm, &claimed_iss, header.kid.as_deref());
            let Some(key) = pick(&keys, header.kid.as_deref()) else {
                last = AuthError::InvalidToken(String::from(
                    "no key of the token's issuer matches its kid (the issuer's keys may not be known yet)",
                ));
                continue;
            };
            let mut validation = Validation::new(header.alg);
            validation.algorithms = vec![header.alg];
            validation.leeway = issuer.config.leeway_secs;
            validation.validate_nbf = true;
            validation.set_audience(&issuer.config.audience);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.set_issuer(&[claimed_iss.as_str()]);
            match jsonwebtoken::decode::<Value>(token, key, &validation) {
                Ok(data) => match issuer.identity(data.claims) {
                    Some(identity) => return Ok(identity),
                    None => {
                        last = AuthError::InvalidToken(String::from("token issuer is not trusted"))
                    }
                },
                Err(err) => {
                    let specific = !matches!(
                        err.kind(),
                        ErrorKind::InvalidIssuer | ErrorKind::InvalidSignature
                    );
                    if specific || matches!(last, AuthError::InvalidToken(_)) {
                        last = describe(err.kind());
                    }
                }
            }
        }
        Err(last)
    }
}

fn describe(kind: &ErrorKind) -> AuthError {
    let message = match kind {
        ErrorKind::ExpiredSignature => return AuthError::Expired,
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)",
        ErrorKind::InvalidAudience => "token audience is not accepted",
        ErrorKind::InvalidIssuer => "token issuer is not trusted",
        ErrorKind::InvalidSignature => "token signature is invalid",
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
        ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim (exp, iss, aud, sub)",
        _ => "token is invalid",
    };
    AuthError::InvalidToken(message.to_string())
}

impl JwtVerifier {
    /// The keys `issuer` verifies `realm`'s tokens with.
    fn keys_of(&self, issuer: &Issuer, realm: &str, iss: &str, kid: Option<&str>) -> Arc<KeyList> {
        let location = match &issuer.keys {
            Keys::One(keys) => return Arc::clone(keys),
            Keys::Set(Source::File(template)) => Location::File(template.replace("{slug}", realm)),
            Keys::Set(Source::Url(template)) => Location::Url(template.replace("{slug}", realm)),
            Keys::Set(Source::Discovery) => Location::Discovery(iss.to_string()),
        };
        self.cache.keys(&location, kid, issuer.timing)
    }
}

/// The key for `kid`: the one with that id, or without a `kid` in the
/// token, the first.
fn pick<'a>(keys: &'a KeyList, kid: Option<&str>) -> Option<&'a DecodingKey> {
    keys.iter()
        .find(|(id, _)| kid.is_none() || id.as_deref() == kid)
        .map(|(_, key)| key)
}

impl Issuer {
    /// Whether `iss` is this issuer's, and its realm: the slug under an
    /// `issuer_pattern`, empty for an exact issuer.
    fn realm(&self, iss: &str) -> Option<String> {
        match (&self.config.issuer, &self.config.issuer_pattern) {
            (Some(exact), _) => (exact == iss).then(String::new),
            (None, Some(pattern)) => match_pattern(pattern, iss),
            (None, None) => None,
        }
    }

    /// The bearer's identity, or `None` when an `issuer_pattern` does not
    /// match the token's `iss`.
    fn identity(&self, claims: Value) -> Option<JwtIdentity> {
        let config = &self.config;
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let roles = strings(claims.get(&config.roles_claim));
        let mut memberships = memberships(claims.get(&config.tenant_claim));
        if let Some(pattern) = &config.issuer_pattern {
            let iss = claims.get("iss").and_then(Value::as_str)?;
            let slug = match_pattern(pattern, iss)?;
            // One realm per tenant: the realm decides, whatever a claim says.
            memberships = vec![Membership {
                tenant: slug,
                roles: None,
            }];
        }
        // The operator role counts only from an issuer trusted with it.
        let operator = config.operator && roles.iter().any(|r| r == &config.operator_role);
        let issued_at_ms = claims
            .get("iat")
            .and_then(Value::as_u64)
            .map(|secs| secs.saturating_mul(1000));
        Some(JwtIdentity {
            issuer: claims
                .get("iss")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            subject,
            operator,
            roles,
            memberships,
            issued_at_ms,
            bounds: Arc::clone(&self.bounds),
        })
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

fn memberships(value: Option<&Value>) -> Vec<Membership> {
    let one = |item: &Value| match item {
        Value::String(tenant) => Some(Membership {
            tenant: tenant.clone(),
            roles: None,
        }),
        Value::Object(map) => Some(Membership {
            tenant: map.get("tenant")?.as_str()?.to_string(),
            roles: Some(strings(map.get("roles"))),
        }),
        _ => None,
    };
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(item) => one(item).into_iter().collect(),
        None => Vec::new(),
    }
}

/// The `{slug}` part of `iss` under `pattern`, if it is a well-formed slug.
fn match_pattern(pattern: &str, iss: &str) -> Option<String> {
    let (prefix, suffix) = pattern.split_once("{slug}")?;
    let slug = iss.strip_prefix(prefix)?.strip_suffix(suffix)?;
    let well_formed = !slug.is_empty()
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    well_formed.then(|| slug.to_string())
}

fn load_issuer(config: &JwtIssuer) -> Result<Issuer, IssuerError> {
    let name = config
        .issuer
        .clone()
        .or_else(|| config.issuer_pattern.clone())
        .unwrap_or_default();
    let error = |message: String| IssuerError {
        issuer: name.clone(),
        message,
    };
    let algorithms = config
        .algorithms
        .iter()
        .map(|alg| {
            Algorithm::from_str(alg).map_err(|_| error(format!("unknown algorithm `{alg}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let keys = if let Some(secret) = &config.secret {
        if !algorithms
            .iter()
            .all(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(error(String::from(
                "a secret only works with HS256/HS384/HS512",
            )));
        }
        Keys::One(Arc::new(vec![(
            None,
            DecodingKey::from_secret(secret.as_bytes()),
        )]))
    } else if let Some(path) = &config.public_key_pem {
        let pem = std::fs::read(path)
            .map_err(|err| error(format!("cannot read `{}`: {err}", path.display())))?;
        let family = single_family(&algorithms).ok_or_else(|| {
            error(String::from(
                "one public key serves one family: RS*/PS*, ES* or EdDSA",
            ))
        })?;
        let key = match family {
            Family::Rsa => DecodingKey::from_rsa_pem(&pem),
            Family::Ec => DecodingKey::from_ec_pem(&pem),
            Family::Ed => DecodingKey::from_ed_pem(&pem),
        }
        .map_err(|err| error(format!("invalid public key: {err}")))?;
        Keys::One(Arc::new(vec![(None, key)]))
    } else if let Some(path) = config.jwks_file.as_ref().filter(|p| !p.contains("{slug}")) {
        // One issuer's file: checked now, so a bad path fails the start;
        // read through the cache like any key set, so a rotated file is
        // picked up on an unknown kid.
        let text = std::fs::read_to_string(path)
            .map_err(|err| error(format!("cannot read `{path}`: {err}")))?;
        let keys = super::jwks::parse(&text).map_err(error)?;
        if keys.is_empty() {
            return Err(error(format!("`{path}` holds no usable key")));
        }
        Keys::Set(Source::File(path.clone()))
    } else if let Some(template) = &config.jwks_file {
        Keys::Set(Source::File(template.clone()))
    } else if let Some(url) = &config.jwks_uri {
        Keys::Set(Source::Url(url.clone()))
    } else if config.discovery {
        Keys::Set(Source::Discovery)
    } else {
        return Err(error(String::from("no key configured")));
    };
    let bounds = Arc::new(IssuerBounds {
        name: name.clone(),
        auto_provision: config.auto_provision,
        provision_kind: config.provision_kind,
        tenants: config.tenants.clone(),
        leeway_secs: config.leeway_secs,
        tenant_header: config.tenant_header.to_ascii_lowercase(),
        require_tenant_header: config.require_tenant_header,
        acting_user_header: config
            .acting_user_header
            .as_ref()
            .map(|h| h.to_ascii_lowercase()),
        self_service: config.self_service,
        self_service_max_tenants: config.self_service_max_tenants,
    });
    Ok(Issuer {
        config: config.clone(),
        algorithms,
        keys,
        bounds,
        timing: Timing {
            refresh: Duration::from_secs(config.jwks_refresh_secs.max(1)),
            stale: Duration::from_secs(config.jwks_stale_secs),
            min_interval: Duration::from_secs(config.jwks_min_interval_secs),
        },
    })
}

enum Family {
    Rsa,
    Ec,
    Ed,
}

fn single_family(algorithms: &[Algorithm]) -> Option<Family> {
    let family = |alg: &Algorithm| match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(0),
        Algorithm::ES256 | Algorithm::ES384 => Some(1),
        Algorithm::EdDSA => Some(2),
        _ => None,
    };
    let first = family(algorithms.first()?)?;
    if !algorithms.iter().all(|a| family(a) == Some(first)) {
        return None;
    }
    Some(match first {
        0 => Family::Rsa,
        1 => Family::Ec,
        _ => Family::Ed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_patterns_yield_well_formed_slugs_only() {
        let pattern = "https://idp.example/realms/tenant-{slug}";
        assert_eq!(
            match_pattern(pattern, "https://idp.example/realms/tenant-acme"),
            Some("acme".into())
        );
        assert_eq!(
            match_pattern(pattern, "https://idp.example/realms/tenant-"),
            None
        );
        assert_eq!(
            match_pattern(pattern, "https://idp.example/realms/tenant-a/b"),
            None
        );
        assert_eq!(
            match_pattern(pattern, "https://evil.example/realms/tenant-acme"),
            None
        );
        assert_eq!(
            match_pattern("https://x/{slug}/y", "https://x/acme/y"),
            Some("acme".into())
        );
    }

    #[test]
    fn tenant_patterns_match_slugs_with_wildcards() {
        for (pattern, slug, matches) in [
            ("acme", "acme", true),
            ("acme", "acme-2", false),
            ("u-*", "u-alice", true),
            ("u-*", "u-", true),
            ("u-*", "acme", false),
            ("*", "anything", true),
            ("*-eu", "acme-eu", true),
            ("*-eu", "acme-us", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxc", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(wildcard_match(pattern, slug), matches, "{pattern} ~ {slug}");
        }
    }

    #[test]
    fn memberships_take_strings_lists_and_objects() {
        let parsed = memberships(Some(&serde_json::json!([
            "acme",
            {"tenant": "globex", "roles": ["authorize"]},
            42
        ])));
        assert_eq!(
            parsed,
            vec![
                Membership {
                    tenant: "acme".into(),
                    roles: None
                },
                Membership {
                    tenant: "globex".into(),
                    roles: Some(vec!["authorize".into()])
                },
            ]
        );
        assert_eq!(memberships(Some(&serde_json::json!("acme"))).len(), 1);
        assert!(memberships(None).is_empty());
    }
}
