//! An operator sets up a tenant with an API key and an agent, then the
//! tenant's key asks for a decision.
//!
//! ```text
//! WARD_URL=http://127.0.0.1:7373 WARD_TOKEN=ward_op_... \
//!     cargo run -p ward-client --example provision -- acme
//! ```

use ward_client::types::{
    AuthorizeRequest, CreateKey, CreateTenant, Entity, KeyRole, Permission, PutAgent,
    RequestAction, TenantKind,
};
use ward_client::{Client, Error, ErrorCode};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WARD_URL").unwrap_or_else(|_| "http://127.0.0.1:7373".into());
    let token = std::env::var("WARD_TOKEN").map_err(|_| "set WARD_TOKEN to the operator token")?;
    let slug = std::env::args().nth(1).unwrap_or_else(|| "acme".into());
    let operator = Client::new(&url, &token)?;

    let tenant = match operator
        .create_tenant(&CreateTenant {
            slug: slug.clone(),
            name: slug.clone(),
            kind: TenantKind::Organization,
            settings: None,
        })
        .await
    {
        Ok(tenant) => tenant,
        // Already there from an earlier run.
        Err(Error::Api {
            code: ErrorCode::Conflict,
            ..
        }) => operator.get_tenant(&slug).await?,
        Err(err) => return Err(err.into()),
    };
    let key = operator
        .create_tenant_key(
            &tenant.id,
            &CreateKey {
                name: "example".into(),
                role: KeyRole::Admin,
            },
        )
        .await?;
    let ward = Client::new(&url, &key.secret)?;
    ward.put_agent(
        "reporter",
        &PutAgent {
            kind: "service".into(),
            status: Default::default(),
            attributes: Default::default(),
            permissions: vec![Permission {
                resource: "reports:*".into(),
                actions: vec!["read".into(), "export".into()],
            }],
            policy: None,
            budgets: Default::default(),
        },
    )
    .await?;
    let answer = ward
        .authorize(&AuthorizeRequest {
            subject: Entity::new("agent", "reporter"),
            action: RequestAction::new("export"),
            resource: Entity::new("reports", "q3"),
            context: None,
        })
        .await?;
    println!(
        "tenant {} key {}: export reports:q3 → {}",
        tenant.slug, key.key.id, answer.decision
    );
    Ok(())
}
