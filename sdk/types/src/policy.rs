use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Scope, Timestamp};

/// One uploaded version of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyVersion {
    /// 1, 2, 3… in upload order.
    pub version: u32,
    /// Hex sha256 of the module.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// When uploaded.
    pub created_at: Timestamp,
    /// The language the module was written in, as its producers section
    /// names it (`JavaScript`, `Python`, `Rust`…); absent when it names
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A policy: its versions and which one is active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyInfo {
    /// Unique within its scope.
    pub name: String,
    /// Where it lives.
    pub scope: Scope,
    /// The version decisions use; `None` until one is activated.
    pub active_version: Option<u32>,
    /// Every version kept, oldest first.
    pub versions: Vec<PolicyVersion>,
    /// Passed to the policy with every request: any JSON, `null` when
    /// unset.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub config: Value,
    /// When created.
    pub created_at: Timestamp,
    /// When last changed.
    pub updated_at: Timestamp,
}

/// Answer to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadedPolicy {
    /// The policy's name.
    pub name: String,
    /// The new version's number.
    pub version: u32,
    /// Hex sha256 of the module.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// Whether this version is now the active one.
    pub active: bool,
}

/// A data document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataDocument {
    /// Its key.
    pub key: String,
    /// Where it lives.
    pub scope: Scope,
    /// The document: any JSON.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Value,
    /// When last written.
    pub updated_at: Timestamp,
}

/// Body of `POST /v1/policies/{name}/activate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ActivatePolicy {
    /// The version to make active.
    pub version: u32,
}
