//! JWT bearer tokens from configured issuers. Each issuer fixes its
//! algorithms and keys, so `alg: none` and algorithm confusion (an HS256
//! token "signed" with an RS256 public key) are refused by construction.

use std::str::FromStr;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::AuthError;
use crate::config::JwtIssuer;

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtIdentity {
    /// The `sub` claim.
    pub subject: String,
    /// Roles from the issuer's roles claim.
    pub roles: Vec<String>,
    /// Whether the roles include the issuer's operator role.
    pub operator: bool,
    /// Tenants (slug or id) the bearer belongs to, with per-tenant roles
    /// when the token gives them.
    pub memberships: Vec<Membership>,
    /// Whether the issuer may create unknown tenants on first sight.
    pub auto_provision: bool,
}

/// One tenant a token's bearer belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Slug or id.
    pub tenant: String,
    /// Roles in that tenant; `None` means the token's global roles.
    pub roles: Option<Vec<String>>,
}

enum Keys {
    One(DecodingKey),
    ByKid(Vec<(Option<String>, DecodingKey)>),
}

struct Issuer {
    config: JwtIssuer,
    algorithms: Vec<Algorithm>,
    keys: Keys,
}

/// Verifies tokens against every configured issuer.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
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
        Ok(JwtVerifier { issuers })
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
        let mut last =
            AuthError::InvalidToken(String::from("no trusted issuer accepts this token"));
        for issuer in self
            .issuers
            .iter()
            .filter(|i| i.algorithms.contains(&header.alg))
        {
            let Some(key) = issuer.key(header.kid.as_deref()) else {
                continue;
            };
            let mut validation = Validation::new(header.alg);
            validation.algorithms = vec![header.alg];
            validation.leeway = issuer.config.leeway_secs;
            validation.validate_nbf = true;
            validation.set_audience(&issuer.config.audience);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            if let Some(exact) = &issuer.config.issuer {
                validation.set_issuer(&[exact]);
            }
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

impl Issuer {
    fn key(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match &self.keys {
            Keys::One(key) => Some(key),
            Keys::ByKid(keys) => keys
                .iter()
                .find(|(id, _)| kid.is_none() || id.as_deref() == kid)
                .map(|(_, key)| key),
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
        Some(JwtIdentity {
            subject,
            operator: roles.iter().any(|r| r == &config.operator_role),
            roles,
            memberships,
            auto_provision: config.auto_provision,
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
        Keys::One(DecodingKey::from_secret(secret.as_bytes()))
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
        Keys::One(key)
    } else if let Some(path) = &config.jwks_file {
        let text = std::fs::read_to_string(path)
            .map_err(|err| error(format!("cannot read `{}`: {err}", path.display())))?;
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|err| error(format!("invalid JWKS: {err}")))?;
        let keys = set
            .keys
            .iter()
            .map(|jwk| {
                DecodingKey::from_jwk(jwk)
                    .map(|key| (jwk.common.key_id.clone(), key))
                    .map_err(|err| error(format!("invalid JWK: {err}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Keys::ByKid(keys)
    } else {
        return Err(error(String::from("no key configured")));
    };
    Ok(Issuer {
        config: config.clone(),
        algorithms,
        keys,
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
