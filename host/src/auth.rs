//! Who is calling: the operator (bootstrap token or a JWT with the operator
//! role), or a tenant's API key or JWT, with its role in that tenant.
//! Secrets are compared and stored only as sha256 hashes.

mod access;
pub mod jwks;
pub mod jwt;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName};
use rand::RngCore;
use sha2::{Digest, Sha256};
use ward_types::{CreateTenant, KeyRole, TenantKind};

use crate::audit::AuditLog;
use crate::registry::Registry;
use crate::registry::keys::ApiKeys;
use crate::store::{Kind, Store, StoreError, Write};
use jwt::{JwtIdentity, JwtVerifier};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, in any tenant (naming it with `X-Tenant-ID`).
    Operator,
    /// Manage one tenant's objects, and decide.
    Admin,
    /// Decide only.
    Authorize,
    /// A person signed in through a self-service issuer, acting in no
    /// tenant: may create one, list its own (`GET /v1/me`).
    User,
}

/// The person behind a JWT, as far as Ward needs them beyond the request's
/// tenant: for tenant self-service and `GET /v1/me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who: the verified `iss` and `sub`.
    pub owner: ward_types::TenantOwner,
    /// What the issuer may do.
    pub bounds: Arc<jwt::IssuerBounds>,
    /// The tenants the token names, with the roles it gives in each.
    pub memberships: Vec<(String, Vec<String>)>,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For the audit log: `operator`, `key:<id>` or `jwt:<sub>`.
    pub actor: String,
    /// What it may do.
    pub role: Role,
    /// The tenant the request acts in (id), if any.
    pub tenant: Option<String>,
    /// An operator acting inside a tenant: audited as
    /// `admin_cross_tenant_access`.
    pub cross_tenant: bool,
    /// For JWTs: the person, their issuer and memberships.
    pub principal: Option<Principal>,
}

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials at all.
    #[error("send `Authorization: Bearer <token>`: an API key, a JWT or the operator token")]
    Missing,
    /// Credentials that do not check out.
    #[error("{0}")]
    InvalidToken(String),
    /// A JWT past its `exp`.
    #[error("token has expired")]
    Expired,
    /// `X-Tenant-ID` names a tenant the credential does not belong to.
    #[error("{0}")]
    TenantMismatch(String),
    /// A header that cannot be read (not ASCII, too long).
    #[error("{0}")]
    BadHeader(String),
    /// The operator named a tenant that does not exist.
    #[error("tenant `{0}` not found")]
    UnknownTenant(String),
    /// The request needs a tenant and the credential names none or several.
    #[error("{0}")]
    TenantRequired(String),
    /// Authenticated, but without a Ward role.
    #[error("{0}")]
    Forbidden(String),
    /// A tenant's own admins may not set this setting.
    #[error("{0}")]
    NotAdjustable(String),
    /// The token names a tenant its issuer is not trusted with.
    #[error("{0}")]
    TenantNotAllowed(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks bearer tokens.
pub struct Authenticator {
    operator_hash: [u8; 32],
    keys: Arc<ApiKeys>,
    jwt: JwtVerifier,
    registry: Arc<Registry>,
    audit: Arc<AuditLog>,
    /// A header an operator may name its tenant in beside `X-Tenant-ID`.
    operator_tenant_header: Option<HeaderName>,
}

/// The header naming the tenant a request acts in.
pub const TENANT_HEADER: &str = "x-tenant-id";

/// Longest header value Ward reads for a tenant or an acting user.
const MAX_HEADER_VALUE: usize = 256;

/// The value of header `name`, if sent: printable ASCII of at most
/// [`MAX_HEADER_VALUE`] bytes.
fn header_value<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, AuthError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .filter(|text| {
            text.len() <= MAX_HEADER_VALUE
                && text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .ok_or_else(|| {
            AuthError::BadHeader(format!(
                "header {name} must be printable ASCII of at most {MAX_HEADER_VALUE} bytes"
            ))
        })?;
    Ok(Some(text))
}

impl Authenticator {
    /// An authenticator for the operator token hashing to `operator_hash`.
    /// Operators acting inside a tenant are written to that tenant's
    /// `audit` log.
    pub fn new(
        operator_hash: [u8; 32],
        keys: Arc<ApiKeys>,
        jwt: JwtVerifier,
        registry: Arc<Registry>,
        audit: Arc<AuditLog>,
    ) -> Self {
        Authenticator {
            operator_hash,
            keys,
            jwt,
            registry,
            audit,
            operator_tenant_header: None,
        }
    }

    /// Lets operators name their tenant in `header` too.
    pub fn with_operator_tenant_header(mut self, header: Option<&str>) -> Self {
        self.operator_tenant_header =
            header.and_then(|name| HeaderName::from_bytes(name.as_bytes()).ok());
        self
    }

    /// Every header that may choose a caller's tenant or name the user it
    /// acts for, lower case, with what it means (for `/openapi.json`).
    pub fn request_headers(&self) -> Vec<(String, &'static str)> {
        let mut headers = vec![(
            TENANT_HEADER.to_string(),
            "The tenant (id or slug) an operator or a multi-tenant JWT acts in; an API key's own tenant if sent.",
        )];
        if let Some(alias) = &self.operator_tenant_header {
            headers.push((
                alias.as_str().to_string(),
                "Another header the operator may name its tenant in (auth.operator_tenant_header).",
            ));
        }
        for header in self.jwt.headers() {
            if !headers.iter().any(|(name, _)| *name == header.0) {
                headers.push(header);
            }
        }
        headers
    }

    /// Writes an operator's request inside a tenant (`method` `path`) to
    /// that tenant's audit log, durably: the tenant can see who of the
    /// platform looked. Does nothing for other callers.
    pub fn record_cross_tenant(
        &self,
        caller: &Caller,
        method: &str,
        path: &str,
    ) -> Result<(), AuthError> {
        let Some(tenant) = caller.tenant.as_deref().filter(|_| caller.cross_tenant) else {
            return Ok(());
        };
        self.audit.record_event(
            tenant,
            &caller.actor,
            ward_types::AuditKind::AdminCrossTenantAccess,
            None,
            serde_json::json!({"method": method, "path": path}),
        )?;
        Ok(())
    }

    /// Resolves the `Authorization` header and the request's tenant
    /// headers into a caller.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = match header.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => {
                return Err(AuthError::InvalidToken(String::from(
                    "expected `Authorization: Bearer <token>`",
                )));
            }
        };
        let tenant_header = header_value(headers, TENANT_HEADER)?;
        if constant_time_eq(
            &Sha256::digest(token.as_bytes()).into(),
            &self.operator_hash,
        ) {
            return self.operator("operator", self.operator_tenant(headers)?);
        }
        if token.starts_with("wk_") {
            return self.api_key(token, tenant_header);
        }
        if token.matches('.').count() == 2 && self.jwt.is_enabled() {
            let identity = self.jwt.verify(token)?;
            return self.jwt_caller(identity, headers);
        }
        Err(AuthError::InvalidToken(String::from("unknown token")))
    }

    /// The tenant an operator names: `X-Tenant-ID`, or the configured
    /// alias (the two must agree when both are sent).
    fn operator_tenant<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a str>, AuthError> {
        let standard = header_value(headers, TENANT_HEADER)?;
        let alias = match &self.operator_tenant_header {
            Some(name) => header_value(headers, name.as_str())?,
            None => None,
        };
        match (standard, alias) {
            (Some(one), Some(other)) if one != other => Err(AuthError::TenantMismatch(format!(
                "X-Tenant-ID and {} name different tenants",
                self.operator_tenant_header
                    .as_ref()
                    .map_or("", HeaderName::as_str)
            ))),
            (standard, alias) => Ok(standard.or(alias)),
        }
    }

    fn operator(&self, actor: &str, tenant_header: Option<&str>) -> Result<Caller, AuthError> {
        let tenant = match tenant_header {
            Some(named) => Some(
                self.registry
                    .get_tenant(named)
                    .map_err(|_| AuthError::UnknownTenant(crate::registry::clip(named)))?
                    .id,
            ),
            None => None,
        };
        Ok(Caller {
            actor: actor.to_string(),
            role: Role::Operator,
            cross_tenant: tenant.is_some(),
            tenant,
            principal: None,
        })
    }

    fn api_key(&self, token: &str, tenant_header: Option<&str>) -> Result<Caller, AuthError> {
        let entry = self
            .keys
            .lookup(token)
            .ok_or_else(|| AuthError::InvalidToken(String::from("unknown or revoked API key")))?;
        let tenant = self
            .registry
            .get_tenant(&entry.record.tenant_id)
            .map_err(|_| AuthError::InvalidToken(String::from("unknown or revoked API key")))?;
        if let Some(named) = tenant_header
            && named != tenant.id
            && named != tenant.slug
        {
            return Err(AuthError::TenantMismatch(String::from(
                "X-Tenant-ID does not match the API key's tenant",
            )));
        }
        Ok(Caller {
            actor: format!("key:{}", entry.record.id),
            role: match entry.record.role {
                KeyRole::Admin => Role::Admin,
                KeyRole::Authorize => Role::Authorize,
            },
            tenant: Some(tenant.id),
            cross_tenant: false,
            principal: None,
        })
    }

    fn jwt_caller(&self, identity: JwtIdentity, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let bounds = &identity.bounds;
        let mut actor = format!(
            "jwt:{}",
            identity.subject.replace(|c: char| c.is_control(), "")
        );
        if let Some(name) = &bounds.acting_user_header
            && let Some(user) = header_value(headers, name)?
        {
            actor = crate::audit::acting_for(&actor, user);
        }
        if identity.operator {
            return self.operator(&actor, self.operator_tenant(headers)?);
        }
        let tenant_header = header_value(headers, &bounds.tenant_header)?;
        if bounds.require_tenant_header && tenant_header.is_none() {
            return Err(AuthError::Forbidden(format!(
                "tokens of this issuer name their tenant in the {} header",
                bounds.tenant_header
            )));
        }
        let principal = Principal {
            owner: ward_types::TenantOwner {
                issuer: identity.issuer.clone(),
                subject: identity.subject.clone(),
            },
            bounds: Arc::clone(bounds),
            memberships: identity
                .memberships
                .iter()
                .map(|m| {
                    (
                        m.tenant.clone(),
                        m.roles.clone().unwrap_or_else(|| identity.roles.clone()),
                    )
                })
                .collect(),
        };
        // A self-service user naming no tenant acts in none; one naming a
        // tenant they created acts there as its admin.
        if bounds.self_service {
            match tenant_header {
                None if identity.memberships.is_empty() => {
                    return Ok(Caller {
                        actor,
                        role: Role::User,
                        tenant: None,
                        cross_tenant: false,
                        principal: Some(principal),
                    });
                }
                Some(named) => {
                    if let Ok(tenant) = self.registry.get_tenant(named)
                        && tenant.owner.as_ref() == Some(&principal.owner)
                    {
                        return Ok(Caller {
                            actor,
                            role: Role::Admin,
                            tenant: Some(tenant.id),
                            cross_tenant: false,
                            principal: Some(principal),
                        });
                    }
                }
                None => {}
            }
        }
        // Every check comes before anything is created: the membership the
        // request acts in, the role, the issuer's bounds and `iat`. Only a
        // token that passed them all may provision its tenant.
        let membership = self.choose_membership(&identity, tenant_header)?;
        let roles = membership.roles.as_ref().unwrap_or(&identity.roles);
        let role = if roles.iter().any(|r| r == "admin") {
            Role::Admin
        } else if roles.iter().any(|r| r == "authorize") {
            Role::Authorize
        } else {
            return Err(AuthError::Forbidden(String::from(
                "token grants no Ward role (admin or authorize) in this tenant",
            )));
        };
        let issued_at = identity.issued_at_ms.ok_or_else(|| {
            AuthError::InvalidToken(String::from("token lacks `iat`, which tenant tokens need"))
        })?;
        let existing = self.registry.get_tenant(&membership.tenant).ok();
        let slug = existing
            .as_ref()
            .map_or(membership.tenant.as_str(), |tenant| tenant.slug.as_str());
        self.check_bounds(bounds, slug)?;
        // A token issued before a tenant of this slug was deleted belongs
        // to that tenant: it never provisions the slug again, nor acts in
        // a new tenant that reuses it.
        if let Some(deleted) = self.registry.deleted_at_ms(slug)
            && issued_at <= deleted
        {
            return Err(AuthError::InvalidToken(String::from(
                "token was issued before a tenant of this name was deleted",
            )));
        }
        let tenant = match existing {
            Some(tenant) => {
                let leeway_ms = bounds.leeway_secs.saturating_mul(1000);
                if issued_at.saturating_add(leeway_ms) < tenant.created_at.millis() {
                    return Err(AuthError::InvalidToken(String::from(
                        "token was issued before its tenant was created",
                    )));
                }
                tenant
            }
            None if bounds.auto_provision => {
                self.provision(&membership.tenant, &actor, bounds.provision_kind)?
            }
            None => {
                return Err(AuthError::Forbidden(String::from(
                    "token names no known tenant",
                )));
            }
        };
        Ok(Caller {
            actor,
            role,
            tenant: Some(tenant.id),
            cross_tenant: false,
            principal: Some(principal),
        })
    }

    /// The membership a JWT acts in: the one `X-Tenant-ID` names, or the
    /// token's only one.
    fn choose_membership<'a>(
        &self,
        identity: &'a JwtIdentity,
        tenant_header: Option<&str>,
    ) -> Result<&'a jwt::Membership, AuthError> {
        let Some(named) = tenant_header else {
            return match identity.memberships.as_slice() {
                [] => Err(AuthError::Forbidden(String::from("token names no tenant"))),
                [only] => Ok(only),
                _ => Err(AuthError::TenantRequired(String::from(
                    "token belongs to several tenants: choose one with X-Tenant-ID",
                ))),
            };
        };
        let named_tenant = self.registry.get_tenant(named).ok();
        identity
            .memberships
            .iter()
            .find(|membership| {
                membership.tenant == named
                    || named_tenant.as_ref().is_some_and(|tenant| {
                        membership.tenant == tenant.id || membership.tenant == tenant.slug
                    })
            })
            .ok_or_else(|| {
                AuthError::TenantMismatch(String::from(
                    "X-Tenant-ID is not one of the token's tenants",
                ))
            })
    }

    fn check_bounds(&self, bounds: &jwt::IssuerBounds, slug: &str) -> Result<(), AuthError> {
        if bounds.allows(slug) {
            Ok(())
        } else {
            Err(AuthError::TenantNotAllowed(format!(
                "issuer `{}` is not trusted with tenant `{}`",
                crate::registry::clip(&bounds.name),
                crate::registry::clip(slug)
            )))
        }
    }

    /// Creates the tenant `slug` for a token that passed every check; a
    /// concurrent request creating it first is fine (one tenant results).
    fn provision(
        &self,
        slug: &str,
        actor: &str,
        kind: TenantKind,
    ) -> Result<ward_types::Tenant, AuthError> {
        let request = CreateTenant {
            slug: slug.to_string(),
            name: slug.to_string(),
            kind,
            settings: None,
        };
        match self.registry.create_tenant(request, actor) {
            Ok(tenant) => {
                tracing::info!(slug, "tenant provisioned from a JWT");
                Ok(tenant)
            }
            Err(err) => self.registry.get_tenant(slug).map_err(|_| {
                AuthError::Forbidden(format!(
                    "tenant `{}` could not be provisioned: {err}",
                    crate::registry::clip(slug)
                ))
            }),
        }
    }
}

/// The operator token's hash: from `WARD_ADMIN_TOKEN`, else the config,
/// else the store; on the very first start, a new token is generated,
/// its hash stored, and the token returned so it can be shown once.
pub fn operator_token(
    env_token: Option<&str>,
    configured_hash: Option<&str>,
    store: &dyn Store,
) -> Result<([u8; 32], Option<String>), StoreError> {
    if let Some(token) = env_token.filter(|t| !t.is_empty()) {
        return Ok((Sha256::digest(token.as_bytes()).into(), None));
    }
    let decode =
        |hex_text: &str| -> Option<[u8; 32]> { hex::decode(hex_text).ok()?.try_into().ok() };
    if let Some(hash) = configured_hash.and_then(decode) {
        return Ok((hash, None));
    }
    const META_KEY: &str = "operator_token_sha256";
    if let Some(stored) = store.get(Kind::Meta, META_KEY)?
        && let Some(hash) = std::str::from_utf8(&stored).ok().and_then(decode)
    {
        return Ok((hash, None));
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let token = format!("ward_op_{}", hex::encode(secret));
    let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    store.write(vec![Write::Put {
        kind: Kind::Meta,
        key: META_KEY.to_string(),
        value: hex::encode(hash).into_bytes(),
    }])?;
    Ok((hash, Some(token)))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
