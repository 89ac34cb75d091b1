//! Test guest: panics on every request.

use ward_policy::{Decision, Request, Result};

fn evaluate(request: &Request) -> Result<Decision> {
    panic!("refusing `{}` on purpose", request.action().name());
}

ward_policy::policy!(evaluate);
