//! Asks Ward one question and prints the answer.
//!
//! ```text
//! WARD_URL=http://127.0.0.1:7373 WARD_TOKEN=wk_... \
//!     cargo run -p ward-client --example authorize -- reporter export reports:q3
//! ```

use ward_client::Client;
use ward_client::types::{AuthorizeRequest, Entity, RequestAction};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("WARD_URL").unwrap_or_else(|_| "http://127.0.0.1:7373".into());
    let token = std::env::var("WARD_TOKEN").map_err(|_| "set WARD_TOKEN to an API key")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [agent, action, resource] = args.as_slice() else {
        return Err("usage: authorize AGENT ACTION TYPE:ID".into());
    };
    let (kind, id) = resource.split_once(':').ok_or("the resource is TYPE:ID")?;
    let ward = Client::new(&url, &token)?;
    let answer = ward
        .authorize(&AuthorizeRequest {
            subject: Entity::new("agent", agent),
            action: RequestAction::new(action),
            resource: Entity::new(kind, id),
            context: None,
        })
        .await?;
    println!(
        "{} ({})",
        if answer.decision { "allow" } else { "deny" },
        answer.reasons.join(", ")
    );
    Ok(())
}
