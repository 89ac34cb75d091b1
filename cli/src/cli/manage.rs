//! Tenants, keys, agents, data, audit, usage and one-off decisions.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ward_client::AgentFilter;
use ward_client::types::{
    AgentStatus, AuditEntry, AuditQuery, AuthorizeRequest, CreateKey, CreateTenant, Entity,
    KeyRole, Permission, PutAgent, RequestAction, Tenant, TenantKind, UpdateTenant,
};

use super::output::{Table, or_dash, verdict, word};
use super::{AgentCommand, AuditCommand, CheckArgs, Ctx, DataCommand, KeyCommand, TenantCommand};
use super::{json_arg, object_arg};

const OK: anyhow::Result<ExitCode> = Ok(ExitCode::SUCCESS);

fn tenant_table(tenants: &[Tenant]) {
    let mut table = Table::new(&["ID", "SLUG", "NAME", "KIND", "STATUS", "CREATED"]);
    for t in tenants {
        table.row(vec![
            t.id.clone(),
            t.slug.clone(),
            t.name.clone(),
            word(&t.kind),
            word(&t.status),
            t.created_at.to_string(),
        ]);
    }
    table.print_or("no tenants");
}

fn tenant_detail(t: &Tenant) {
    tenant_table(std::slice::from_ref(t));
    if let Some(plan) = &t.plan {
        match t.trial_ends_at {
            Some(end) => println!("\nplan: {plan} (trial ends {end})"),
            None => println!("\nplan: {plan}"),
        }
    }
    if let Ok(settings) = serde_json::to_string_pretty(&t.settings) {
        println!("\nsettings: {settings}");
    }
}

/// `ward tenant …`
pub async fn tenant(ctx: Ctx, command: TenantCommand) -> anyhow::Result<ExitCode> {
    let client = &ctx.client;
    match command {
        TenantCommand::Create {
            slug,
            name,
            kind,
            settings,
        } => {
            let kind = match kind.as_str() {
                "organization" => TenantKind::Organization,
                "personal" => TenantKind::Personal,
                other => anyhow::bail!("--kind is organization or personal, not `{other}`"),
            };
            let request = CreateTenant {
                name: name.unwrap_or_else(|| slug.clone()),
                slug,
                kind,
                settings: settings.map(|s| object_arg(&s, "--settings")).transpose()?,
            };
            let tenant = client.create_tenant(&request).await?;
            ctx.show(&tenant, tenant_detail)?;
        }
        TenantCommand::List => {
            let tenants = client.list_tenants().await?;
            ctx.show(&tenants, |t| tenant_table(t))?;
        }
        TenantCommand::Get { tenant } => {
            ctx.show(&client.get_tenant(&tenant).await?, tenant_detail)?;
        }
        TenantCommand::Update {
            tenant,
            name,
            settings,
            plan,
            no_plan,
        } => {
            let mut updated = None;
            if name.is_some() || settings.is_some() {
                let update = UpdateTenant {
                    name,
                    settings: settings.map(|s| object_arg(&s, "--settings")).transpose()?,
                };
                updated = Some(client.update_tenant(&tenant, &update).await?);
            }
            if plan.is_some() || no_plan {
                updated = Some(client.set_tenant_plan(&tenant, plan.as_deref()).await?);
            }
            let tenant = match updated {
                Some(tenant) => tenant,
                None => client.get_tenant(&tenant).await?,
            };
            ctx.show(&tenant, tenant_detail)?;
        }
        TenantCommand::Plans => {
            let plans = client.list_plans().await?;
            ctx.show(&plans, |plans| {
                let mut table = Table::new(&["NAME", "TRIAL DAYS", "SETTINGS"]);
                for plan in plans {
                    table.row(vec![
                        plan.name.clone(),
                        plan.trial_days.map_or(String::from("-"), |d| d.to_string()),
                        serde_json::Value::Object(plan.settings.clone()).to_string(),
                    ]);
                }
                table.print_or("no plans");
            })?;
        }
        TenantCommand::Suspend { tenant } => {
            ctx.show(&client.suspend_tenant(&tenant).await?, tenant_detail)?;
        }
        TenantCommand::Activate { tenant } => {
            ctx.show(&client.activate_tenant(&tenant).await?, tenant_detail)?;
        }
        TenantCommand::Delete { tenant } => {
            client.delete_tenant(&tenant).await?;
            ctx.done(format!("deleted tenant {tenant}"));
        }
    }
    OK
}

/// `ward key …`
pub async fn key(ctx: Ctx, command: KeyCommand) -> anyhow::Result<ExitCode> {
    let client = &ctx.client;
    match command {
        KeyCommand::Create {
            name,
            role,
            secret_only,
        } => {
            let role = match role.as_str() {
                "admin" => KeyRole::Admin,
                "authorize" => KeyRole::Authorize,
                other => anyhow::bail!("--role is admin or authorize, not `{other}`"),
            };
            let created = client.create_key(&CreateKey { name, role }).await?;
            if secret_only {
                println!("{}", created.secret);
                return OK;
            }
            ctx.show(&created, |k| {
                println!("created key {} ({})", k.key.id, word(&k.key.role));
                println!(
                    "secret (shown only now; keep it safe):\n\n    {}\n",
                    k.secret
                );
            })?;
        }
        KeyCommand::List => {
            let keys = client.list_keys().await?;
            ctx.show(&keys, |keys| {
                let mut table = Table::new(&["ID", "NAME", "ROLE", "CREATED", "LAST USED"]);
                for k in keys {
                    table.row(vec![
                        k.id.clone(),
                        k.name.clone(),
                        word(&k.role),
                        k.created_at.to_string(),
                        or_dash(k.last_used_at),
                    ]);
                }
                table.print_or("no keys");
            })?;
        }
        KeyCommand::Revoke { id } => {
            client.revoke_key(&id).await?;
            ctx.done(format!("revoked key {id}"));
        }
    }
    OK
}

/// `RESOURCE=ACTION,ACTION`
fn parse_permission(text: &str) -> anyhow::Result<Permission> {
    let (resource, actions) = text
        .split_once('=')
        .filter(|(r, a)| !r.is_empty() && !a.is_empty())
        .with_context(|| format!("permission `{text}` is not RESOURCE=ACTION[,ACTION…]"))?;
    Ok(Permission {
        resource: resource.to_string(),
        actions: actions.split(',').map(|a| a.trim().to_string()).collect(),
    })
}

fn agents_table(agents: &[ward_client::types::Agent]) {
    let mut table = Table::new(&["NAME", "SCOPE", "TYPE", "STATUS", "POLICY", "PERMISSIONS"]);
    for a in agents {
        let permissions = a
            .permissions
            .iter()
            .map(|p| format!("{}={}", p.resource, p.actions.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        table.row(vec![
            a.name.clone(),
            word(&a.scope),
            a.kind.clone(),
            word(&a.status),
            or_dash(a.policy.as_deref()),
            permissions,
        ]);
    }
    table.print_or("no agents");
}

/// `ward agent …`
pub async fn agent(ctx: Ctx, command: AgentCommand) -> anyhow::Result<ExitCode> {
    let client = &ctx.client;
    match command {
        AgentCommand::Put {
            name,
            kind,
            permissions,
            attributes,
            policy,
            disabled,
        } => {
            let body = PutAgent {
                kind,
                status: if disabled {
                    AgentStatus::Disabled
                } else {
                    AgentStatus::Active
                },
                attributes: attributes
                    .map(|a| object_arg(&a, "--attributes"))
                    .transpose()?
                    .unwrap_or_default(),
                permissions: permissions
                    .iter()
                    .map(|p| parse_permission(p))
                    .collect::<anyhow::Result<_>>()?,
                policy,
                budgets: Default::default(),
            };
            let agent = client.put_agent(&name, &body).await?;
            ctx.show(&agent, |a| agents_table(std::slice::from_ref(a)))?;
        }
        AgentCommand::List {
            status,
            kind,
            limit,
            cursor,
        } => {
            let status = status
                .map(|s| match s.as_str() {
                    "active" => Ok(AgentStatus::Active),
                    "disabled" => Ok(AgentStatus::Disabled),
                    other => anyhow::bail!("--status is active or disabled, not `{other}`"),
                })
                .transpose()?;
            let paged = limit.is_some() || cursor.is_some();
            let page = client
                .list_agents_filtered(&AgentFilter {
                    status,
                    kind,
                    limit,
                    cursor,
                })
                .await?;
            // Unpaged, `--json` prints the plain list, as the server answers.
            if paged {
                ctx.show(&page, |p| {
                    agents_table(&p.agents);
                    if let Some(next) = &p.next_cursor {
                        println!("next page: --cursor {next}");
                    }
                })?;
            } else {
                ctx.show(&page.agents, |a| agents_table(a))?;
            }
        }
        AgentCommand::Get { name } => {
            let agent = client.get_agent(&name).await?;
            ctx.show(&agent, |a| agents_table(std::slice::from_ref(a)))?;
        }
        AgentCommand::Delete { name } => {
            client.delete_agent(&name).await?;
            ctx.done(format!("deleted agent {name}"));
        }
    }
    OK
}

/// `ward data …`
pub async fn data(ctx: Ctx, command: DataCommand) -> anyhow::Result<ExitCode> {
    let client = &ctx.client;
    match command {
        DataCommand::Put { key, value } => {
            let document = client
                .put_data(&key, &json_arg(&value, "the value")?)
                .await?;
            ctx.show(&document, |d| {
                println!("stored {} ({})", d.key, word(&d.scope));
            })?;
        }
        DataCommand::Get { key } => {
            let document = client.get_data(&key).await?;
            // A document is JSON either way; only its value is printed
            // without --json.
            ctx.show(&document, |d| {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&d.value).unwrap_or_default()
                );
            })?;
        }
        DataCommand::Delete { key } => {
            client.delete_data(&key).await?;
            ctx.done(format!("deleted {key}"));
        }
    }
    OK
}

fn audit_line(entry: &AuditEntry) -> String {
    let kind = word(&entry.kind);
    let mut line = format!("{}  {kind:<24}  {}", entry.time, entry.actor);
    if let Some(decision) = entry.decision {
        line.push_str(&format!("  {}", verdict(decision)));
        if let Some(agent) = &entry.agent {
            line.push_str(&format!("  agent={}", agent.name));
        }
        if let Some(policy) = &entry.policy {
            line.push_str(&format!("  policy={}@{}", policy.name, policy.version));
        }
        if !entry.reasons.is_empty() {
            line.push_str(&format!("  ({})", entry.reasons.join("; ")));
        }
    } else if let Some(target) = &entry.target {
        line.push_str(&format!("  {target}"));
    }
    line
}

/// `ward audit tail`: the last entries oldest first, then new ones as
/// they are written (entry ids are ULIDs, so newer ones sort after).
pub async fn audit(ctx: Ctx, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Tail {
        lines,
        kind,
        agent,
        decision,
        no_follow,
        interval_ms,
    } = command;
    let decision = decision
        .map(|d| match d.as_str() {
            "allow" | "true" => Ok("true".to_string()),
            "deny" | "false" => Ok("false".to_string()),
            other => anyhow::bail!("--decision is allow or deny, not `{other}`"),
        })
        .transpose()?;
    let query = AuditQuery {
        kind,
        agent,
        decision,
        limit: Some(lines.clamp(1, 1000).to_string()),
        ..AuditQuery::default()
    };
    let print = |entry: &AuditEntry| -> anyhow::Result<()> {
        if ctx.json {
            println!("{}", serde_json::to_string(entry)?);
        } else {
            println!("{}", audit_line(entry));
        }
        Ok(())
    };
    let first = ctx.client.audit(&query).await?;
    let mut last = first.entries.first().map(|e| e.id.clone());
    for entry in first.entries.iter().rev() {
        print(entry)?;
    }
    if no_follow {
        return OK;
    }
    let interval = Duration::from_millis(interval_ms.max(100));
    loop {
        tokio::time::sleep(interval).await;
        // Page back until the last entry printed, then print oldest first.
        let mut fresh = Vec::new();
        let mut page_query = AuditQuery {
            limit: Some("1000".into()),
            ..query.clone()
        };
        'pages: loop {
            let page = ctx.client.audit(&page_query).await?;
            for entry in page.entries {
                if last.as_ref().is_some_and(|l| entry.id <= *l) {
                    break 'pages;
                }
                fresh.push(entry);
            }
            match page.next_cursor {
                Some(cursor) if last.is_some() => page_query.cursor = Some(cursor),
                _ => break,
            }
        }
        if let Some(newest) = fresh.first() {
            last = Some(newest.id.clone());
        }
        for entry in fresh.iter().rev() {
            print(entry)?;
        }
        use std::io::Write;
        std::io::stdout().flush()?;
    }
}

/// `ward usage`
pub async fn usage(ctx: Ctx) -> anyhow::Result<ExitCode> {
    let usage = ctx.client.usage().await?;
    ctx.show(&usage, |u| {
        let mut table = Table::new(&["", ""]);
        let budget = or_dash(u.max_decisions_per_month);
        let rows = [
            ("month", u.month.clone()),
            ("decisions", format!("{} of {budget}", u.decisions)),
            (
                "rate limit",
                format!("{}/s, burst {}", u.rate_limit_per_sec, u.burst),
            ),
            (
                "evaluations",
                format!(
                    "{} running of {}",
                    u.evaluations_running, u.max_concurrent_evaluations
                ),
            ),
            ("refused: rate_limited", u.rate_limited.to_string()),
            (
                "refused: too_many_evaluations",
                u.too_many_evaluations.to_string(),
            ),
            ("refused: budget_exhausted", u.budget_exhausted.to_string()),
        ];
        for (name, value) in rows {
            table.row(vec![name.to_string(), value]);
        }
        let spent = |spend: &ward_client::types::UnitSpend| match spend.monthly {
            Some(monthly) => format!("{} of {monthly}", spend.spent),
            None => spend.spent.to_string(),
        };
        for (unit, spend) in &u.spend {
            table.row(vec![format!("spent: {unit}"), spent(spend)]);
        }
        for (agent, units) in &u.agents {
            for (unit, spend) in units {
                table.row(vec![format!("spent by {agent}: {unit}"), spent(spend)]);
            }
        }
        // The header row of this two-column list is blank.
        print!("{}", table.render().trim_start_matches([' ', '\n']));
    })?;
    OK
}

/// `ward check`: exit code 0 when allowed, 1 when denied.
pub async fn check(ctx: Ctx, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let entity = |text: &str, what: &str| {
        Entity::parse_qualified(text).with_context(|| format!("{what} `{text}` is not TYPE:ID"))
    };
    let object =
        |text: Option<String>, what: &str| text.map(|text| object_arg(&text, what)).transpose();
    let mut subject = if args.subject.contains(':') {
        entity(&args.subject, "the subject")?
    } else {
        Entity::new("agent", args.subject.as_str())
    };
    subject.properties = object(args.subject_properties, "--subject-properties")?;
    let mut action = RequestAction::new(args.action.as_str());
    action.properties = object(args.action_properties, "--action-properties")?;
    let mut resource = entity(&args.resource, "the resource")?;
    resource.properties = object(args.resource_properties, "--resource-properties")?;
    let request = AuthorizeRequest {
        subject,
        action,
        resource,
        context: object(args.context, "--context")?,
    };
    let answer = ctx.client.authorize(&request).await?;
    ctx.show(&answer, |a| {
        println!("{}", verdict(a.decision));
        for reason in &a.reasons {
            println!("  {reason}");
        }
        if let Some(policy) = &a.policy {
            println!(
                "policy {} v{} ({}), decision {}",
                policy.name,
                policy.version,
                word(&policy.scope),
                a.decision_id
            );
        }
    })?;
    Ok(if answer.decision {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
