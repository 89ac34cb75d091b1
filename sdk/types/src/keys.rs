use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum KeyRole {
    /// Manage the tenant's objects, and decide.
    Admin,
    /// Decide only.
    Authorize,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    /// Its id, used to revoke it.
    pub id: String,
    /// A label.
    pub name: String,
    /// What it may do.
    pub role: KeyRole,
    /// When created.
    pub created_at: Timestamp,
    /// When last used (to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// Body of `POST /v1/keys` and `POST /v1/tenants/{t}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A label.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 200))]
    pub name: String,
    /// What it may do.
    pub role: KeyRole,
}

/// A new key: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKeyInfo,
    /// The bearer token. Store it now: Ward keeps only its hash.
    pub secret: String,
}
