//! Many tenants with their own policies: compiled code beyond the resident
//! limit is dropped from memory and reloaded from the disk cache, never
//! recompiled.

use std::sync::Arc;

use ward::registry::ScopeId;
use ward::sandbox::{Sandbox, SandboxConfig};
use ward_types::{
    AgentStatus, AuthorizeRequest, CreateTenant, Entity, Permission, PutAgent, RequestAction,
    TenantKind,
};

use crate::support::{Local, guest, small_config};

/// The same component with a custom section that makes its bytes (and so
/// its sha256) distinct: a different module that decides the same way.
pub fn variant(component: &[u8], n: u32) -> Vec<u8> {
    let name = b"ward-variant";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    let mut out = component.to_vec();
    out.push(0); // custom section
    out.push(size as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

#[test]
fn policies_past_the_resident_limit_are_reloaded_from_the_disk_cache() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Arc::new(
        Sandbox::new(SandboxConfig {
            cache_dir: Some(dir.path().join("compiled")),
            max_resident_policies: 2,
            ..small_config()
        })
        .unwrap(),
    );
    let registry = Local::open(
        &dir.path().join("db"),
        &sandbox,
        Arc::new(ward::gates::SystemClock),
    );

    let permissions = guest("permissions");
    let mut tenants = Vec::new();
    for n in 0..4 {
        let tenant = registry
            .create_tenant(
                CreateTenant {
                    slug: format!("t{n}"),
                    name: format!("t{n}"),
                    kind: TenantKind::Organization,
                    settings: None,
                },
                "test",
            )
            .unwrap();
        let scope = ScopeId::Tenant(tenant.id.clone());
        let uploaded = registry
            .upload_policy(&scope, "own", &variant(&permissions, n), true, "test")
            .unwrap();
        registry
            .put_agent(
                &scope,
                "bot",
                PutAgent {
                    kind: "service".into(),
                    status: AgentStatus::Active,
                    attributes: Default::default(),
                    permissions: vec![Permission {
                        resource: "doc:*".into(),
                        actions: vec!["read".into()],
                    }],
                    policy: Some("own".into()),
                    budgets: Default::default(),
                },
                "test",
            )
            .unwrap();
        tenants.push((tenant.id, uploaded.sha256));
    }
    let after_upload = sandbox.stats();
    // The builtin and four distinct modules, each compiled once.
    assert_eq!(after_upload.compiled, 5);
    assert_eq!(after_upload.resident, 2);
    assert!(after_upload.evictions >= 3, "{after_upload:?}");

    let request = |action: &str| AuthorizeRequest {
        subject: Entity::new("agent", "bot"),
        action: RequestAction::new(action),
        resource: Entity::new("doc", "1"),
        context: None,
    };
    for _round in 0..3 {
        for (tenant, sha256) in &tenants {
            let allowed = registry
                .authorize(tenant, &request("read"), "test")
                .unwrap();
            assert!(allowed.response.decision, "{:?}", allowed.response);
            assert_eq!(allowed.response.policy.as_ref().unwrap().sha256, *sha256);
            let denied = registry
                .authorize(tenant, &request("write"), "test")
                .unwrap();
            assert!(!denied.response.decision);
        }
    }
    let after = sandbox.stats();
    assert_eq!(after.compiled, 5, "nothing was recompiled: {after:?}");
    assert!(
        after.cache_hits >= 4,
        "evicted policies came back from disk: {after:?}"
    );
    assert!(after.resident <= 2, "{after:?}");
}
