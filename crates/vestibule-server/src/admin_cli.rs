//! `vestibule user list|show|delete|unlink|end-sessions|groups`: thin wrappers over the broker's operator methods
//! (`vestibule::Broker::list_accounts`, `account_details`, `delete_account`, `unlink_identity_by_operator`,
//! `end_sessions_by_operator`, `change_assigned_groups`). Every change is audited with detail `cli`. Data goes to
//! standard output (`--json`: one object per line), errors to standard error with exit status 1.

use std::path::PathBuf;

use serde_json::{json, Value};
use vestibule::{AccountDetails, AccountView, AdminError, Broker, GroupChange};
use vestibule_core::storage::{AccountQuery, AuditRecord};
use vestibule_core::{AccountId, Timestamp};

use crate::{load, operator_broker, operator_broker_mailing, resolve, TARGET_HELP};

/// Who asks, in the audit log's `detail`.
const WHO: &str = "cli";

/// `vestibule user list`.
#[derive(clap::Args)]
pub(crate) struct ListArgs {
    /// Only accounts where this text occurs, case ignored and taken literally (`%` and `_` are no wildcards): in
    /// the login name, display name, email, or an identity's subject or login name.
    #[arg(long)]
    search: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only accounts after this account id (the next page: the last id shown).
    #[arg(long)]
    after: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `vestibule user show`.
#[derive(clap::Args)]
pub(crate) struct ShowArgs {
    #[arg(help = TARGET_HELP)]
    target: String,
    /// One JSON object.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `vestibule user delete`.
#[derive(clap::Args)]
pub(crate) struct DeleteArgs {
    #[arg(help = TARGET_HELP)]
    target: String,
    /// Delete. Without it nothing is deleted: the command says what would be.
    #[arg(long)]
    yes: bool,
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `vestibule user unlink`.
#[derive(clap::Args)]
pub(crate) struct UnlinkArgs {
    #[arg(help = TARGET_HELP)]
    target: String,
    /// The identity to remove, as `source:subject` (`user show` lists them).
    identity: String,
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `vestibule user end-sessions`.
#[derive(clap::Args)]
pub(crate) struct EndSessionsArgs {
    #[arg(help = TARGET_HELP)]
    target: String,
    /// Revoke every personal access token too.
    #[arg(long)]
    tokens: bool,
    #[arg(long)]
    config: Option<PathBuf>,
}

/// `vestibule user groups`.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("change").multiple(false))]
pub(crate) struct GroupsArgs {
    #[arg(help = TARGET_HELP)]
    target: String,
    /// Exactly these groups (comma-separated).
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    set: Option<Vec<String>>,
    /// Add these groups (comma-separated).
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    add: Option<Vec<String>>,
    /// Remove these groups (comma-separated).
    #[arg(long, group = "change", value_delimiter = ',', num_args = 1)]
    remove: Option<Vec<String>>,
    /// Remove every assigned group.
    #[arg(long, group = "change")]
    clear: bool,
    /// Print as one JSON object.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    config: Option<PathBuf>,
}

fn failed(what: &str, e: &vestibule::BrokerError) -> String {
    format!("cannot {what}: {}", vestibule_core::error_chain(e))
}

/// The message for a refused change; the account is named as the operator typed it.
fn refused(e: AdminError, account: &AccountId) -> String {
    match e {
        AdminError::NoSuchAccount => format!("account {account} is gone"),
        AdminError::Broker(e) => failed("update the account", &e),
        other => format!("{other} (account {account}); nothing was changed"),
    }
}

/// Runs `f` with the operator broker, closing the store afterwards whatever happened.
async fn with_broker<T>(
    cfg: &vestibule_config::FileConfig,
    f: impl AsyncFnOnce(&Broker) -> Result<T, String>,
) -> Result<T, String> {
    let broker = operator_broker(cfg).await?;
    let result = f(&broker).await;
    broker.close().await;
    result
}

/// `vestibule user list`.
pub(crate) async fn list(args: ListArgs) -> Result<(), String> {
    let cfg = load(args.config.as_ref())?;
    let after = args
        .after
        .as_deref()
        .map(AccountId::new)
        .transpose()
        .map_err(|_| "--after takes an account id (the last id of the page before)".to_owned())?;
    let q = AccountQuery {
        search: args.search.clone(),
        after,
        limit: i64::from(args.limit),
    };
    let accounts = with_broker(&cfg, async |b| {
        b.list_accounts(&q).await.map_err(|e| failed("read the accounts", &e))
    })
    .await?;
    if args.json {
        for a in &accounts {
            println!("{}", account_json(a));
        }
        return Ok(());
    }
    if accounts.is_empty() {
        println!("no account matches");
        return Ok(());
    }
    println!(
        "{:<32}  {:<8}  {:<20}  {:<28}  {:<24}  groups",
        "id", "status", "name", "email", "ways in"
    );
    for a in &accounts {
        let name = a
            .display_name
            .clone()
            .or_else(|| a.identities.iter().find_map(|i| i.login.clone()))
            .unwrap_or_else(|| "-".into());
        let ways: Vec<&str> = a.identities.iter().map(|i| i.source.as_str()).collect();
        println!(
            "{:<32}  {:<8}  {:<20}  {:<28}  {:<24}  {}",
            a.id,
            status(a),
            name,
            a.email.as_deref().unwrap_or("-"),
            ways.join(","),
            a.groups().join(",")
        );
    }
    if accounts.len() == args.limit as usize {
        if let Some(last) = accounts.last() {
            println!("(more may follow: --after {})", last.id);
        }
    }
    Ok(())
}

fn status(a: &AccountView) -> &'static str {
    if a.disabled {
        "disabled"
    } else {
        "enabled"
    }
}

/// An account as `user list --json` prints it (and the start of `user show --json`).
fn account_json(a: &AccountView) -> Value {
    json!({
        "id": a.id.as_str(),
        "display_name": a.display_name,
        "email": a.email,
        "email_verified": a.email_verified,
        "disabled": a.disabled,
        "created_at": a.created_at.0,
        "identities": a.identities.iter().map(|i| json!({
            "source": i.source.as_str(), "subject": i.subject.as_str(), "login": i.login,
        })).collect::<Vec<_>>(),
        "groups": a.groups(),
    })
}

/// An audit row as `vestibule audit --json` prints it.
pub(crate) fn audit_json(r: &AuditRecord) -> Value {
    json!({
        "id": r.id, "at": r.at.0, "event": r.event, "account_id": r.account_id, "source": r.source,
        "subject": r.subject, "ip": r.ip, "detail": r.detail,
    })
}

/// An audit row as one readable line, each field named.
pub(crate) fn audit_line(r: &AuditRecord) -> String {
    let field = |name: &str, v: &Option<String>| v.as_ref().map(|v| format!(" {name}={v}")).unwrap_or_default();
    format!(
        "{:>6}  {}  {}{}{}{}{}{}",
        r.id,
        vestibule_axum::utc(r.at),
        r.event,
        field("account", &r.account_id),
        field("source", &r.source),
        field("subject", &r.subject),
        field("ip", &r.ip),
        field("detail", &r.detail),
    )
}

fn at(t: Option<Timestamp>) -> String {
    t.map(vestibule_axum::utc).unwrap_or_else(|| "never".into())
}

/// `vestibule user show`.
pub(crate) async fn show(args: ShowArgs) -> Result<(), String> {
    let cfg = load(args.config.as_ref())?;
    let details = with_broker(&cfg, async |b| {
        let (id, _) = resolve(b, &args.target).await?;
        b.account_details(&id)
            .await
            .map_err(|e| failed("read the account", &e))?
            .ok_or_else(|| format!("account {id} is gone"))
    })
    .await?;
    if args.json {
        println!("{}", details_json(&details));
    } else {
        print!("{}", describe(&details));
    }
    Ok(())
}

fn details_json(d: &AccountDetails) -> Value {
    let a = &d.account;
    let mut v = account_json(a);
    if let Some(map) = v.as_object_mut() {
        map.insert(
            "identities".into(),
            a.identities
                .iter()
                .map(|i| {
                    json!({
                        "source": i.source.as_str(), "subject": i.subject.as_str(), "login": i.login,
                        "email": i.email, "groups": i.groups, "created_at": i.created_at.0,
                        "last_login_at": i.last_login_at.map(|t| t.0),
                    })
                })
                .collect(),
        );
        map.insert("assigned_groups".into(), a.assigned_groups.clone().into());
        map.insert(
            "sessions".into(),
            d.sessions
                .iter()
                .map(|s| {
                    json!({
                        "id": s.id_prefix(), "source": s.source.as_str(), "ip": s.ip, "user_agent": s.user_agent,
                        "created_at": s.created_at.0, "last_seen_at": s.last_seen_at.0,
                        "expires_at": s.expires_at.0,
                    })
                })
                .collect(),
        );
        map.insert(
            "tokens".into(),
            d.tokens
                .iter()
                .map(|t| {
                    json!({
                        "id": t.id, "name": t.name, "scopes": t.scopes, "created_at": t.created_at.0,
                        "expires_at": t.expires_at.0, "last_used_at": t.last_used_at.map(|t| t.0),
                    })
                })
                .collect(),
        );
        map.insert(
            "factors".into(),
            json!({
                "totp": d.factors.totp,
                "passkeys": d.factors.passkeys.iter().map(|p| json!({
                    "name": p.name, "created_at": p.created_at.0, "last_used_at": p.last_used_at.map(|t| t.0),
                })).collect::<Vec<_>>(),
                "recovery_codes_left": d.factors.recovery_codes_left,
            }),
        );
        map.insert("recent_audit".into(), d.recent_audit.iter().map(audit_json).collect());
    }
    v
}

/// The text `user show` prints: `key: value` lines, then one indented line per identity, session, token,
/// passkey and audit event.
fn describe(d: &AccountDetails) -> String {
    let a = &d.account;
    let mut out = format!("account: {}\n", a.id);
    out.push_str(&format!("status: {}\n", status(a)));
    if let Some(name) = &a.display_name {
        out.push_str(&format!("display name: {name}\n"));
    }
    if let Some(email) = &a.email {
        let verified = if a.email_verified { "verified" } else { "not verified" };
        out.push_str(&format!("email: {email} ({verified})\n"));
    }
    out.push_str(&format!("created: {}\n", vestibule_axum::utc(a.created_at)));
    out.push_str(&format!("identities: {}\n", a.identities.len()));
    for i in &a.identities {
        out.push_str(&format!("  {}:{}", i.source, i.subject));
        if let Some(login) = &i.login {
            out.push_str(&format!(" login {login}"));
        }
        if let Some(email) = &i.email {
            out.push_str(&format!(" email {email}"));
        }
        out.push_str(&format!(" last sign-in {}\n", at(i.last_login_at)));
    }
    out.push_str(&format!("groups: {}\n", a.groups().join(",")));
    out.push_str(&format!("assigned groups: {}\n", a.assigned_groups.join(",")));
    out.push_str(&format!("sessions: {}\n", d.sessions.len()));
    for s in &d.sessions {
        out.push_str(&format!(
            "  {} via {} from {} ({}) created {} last seen {}\n",
            s.id_prefix(),
            s.source,
            s.ip.as_deref().unwrap_or("-"),
            s.user_agent.as_deref().unwrap_or("-"),
            vestibule_axum::utc(s.created_at),
            vestibule_axum::utc(s.last_seen_at),
        ));
    }
    out.push_str(&format!("tokens: {}\n", d.tokens.len()));
    for t in &d.tokens {
        out.push_str(&format!(
            "  {} `{}` scopes {} expires {} last used {}\n",
            t.id,
            t.name,
            t.scopes.join(" "),
            vestibule_axum::utc(t.expires_at),
            at(t.last_used_at),
        ));
    }
    let f = &d.factors;
    out.push_str(&format!("authenticator app: {}\n", if f.totp { "on" } else { "off" }));
    out.push_str(&format!("passkeys: {}\n", f.passkeys.len()));
    for p in &f.passkeys {
        out.push_str(&format!(
            "  `{}` added {} last used {}\n",
            p.name,
            vestibule_axum::utc(p.created_at),
            at(p.last_used_at)
        ));
    }
    out.push_str(&format!("recovery codes left: {}\n", f.recovery_codes_left));
    out.push_str(&format!("recent audit: {}\n", d.recent_audit.len()));
    for r in &d.recent_audit {
        out.push_str(&format!("  {}\n", audit_line(r)));
    }
    out
}

/// `vestibule user delete`.
pub(crate) async fn delete(args: DeleteArgs) -> Result<(), String> {
    let cfg = load(args.config.as_ref())?;
    with_broker(&cfg, async |b| {
        let (id, matched_by) = resolve(b, &args.target).await?;
        if !args.yes {
            let d = b
                .account_details(&id)
                .await
                .map_err(|e| failed("read the account", &e))?
                .ok_or_else(|| format!("account {id} is gone"))?;
            let ways: Vec<String> = d
                .account
                .identities
                .iter()
                .map(|i| format!("{}:{}", i.source, i.subject))
                .collect();
            println!("would delete account {id} ({matched_by} `{}`):", args.target);
            println!("  identities: {}", ways.join(", "));
            println!("  sessions: {} (with their remember-me series)", d.sessions.len());
            println!("  personal access tokens: {}", d.tokens.len());
            println!(
                "  second factors: authenticator app {}, {} passkey(s), {} recovery code(s)",
                if d.factors.totp { "on" } else { "off" },
                d.factors.passkeys.len(),
                d.factors.recovery_codes_left
            );
            println!("  assigned groups: {}", d.account.assigned_groups.join(","));
            println!("  pending mailed links and sign-ins; the audit log keeps its rows");
            return Err(format!(
                "nothing was deleted: run `vestibule user delete {} --yes` to delete account {id}",
                args.target
            ));
        }
        let deleted = b.delete_account(&id, WHO).await.map_err(|e| refused(e, &id))?;
        println!(
            "deleted account {id} ({matched_by} `{}`): {}",
            args.target,
            deleted.summary()
        );
        Ok(())
    })
    .await
}

/// `vestibule user unlink`.
pub(crate) async fn unlink(args: UnlinkArgs) -> Result<(), String> {
    let cfg = load(args.config.as_ref())?;
    let Some((source, subject)) = args.identity.split_once(':') else {
        return Err(format!(
            "`{}` is not SOURCE:SUBJECT (`user show` lists the account's identities)",
            args.identity
        ));
    };
    // The account's verified address gets a notice, as when its owner unlinks.
    let (broker, mailer) = operator_broker_mailing(&cfg).await?;
    let result = async {
        let (id, _) = resolve(&broker, &args.target).await?;
        match broker.unlink_identity_by_operator(&id, source, subject, WHO).await {
            Ok(ended) => {
                println!(
                    "removed {} from account {id}; {ended} session(s) and token(s) it opened ended",
                    args.identity
                );
                Ok(())
            }
            Err(AdminError::LastIdentity) => Err(format!(
                "{} is the last way into account {id}; nothing was changed. To remove the account, run \
                 `vestibule user delete {id}`",
                args.identity
            )),
            Err(AdminError::NoSuchIdentity) => Err(format!(
                "account {id} has no identity {}; nothing was changed (`vestibule user show {id}` lists them)",
                args.identity
            )),
            Err(e) => Err(refused(e, &id)),
        }
    }
    .await;
    crate::mail_and_close(broker, &mailer).await;
    result
}

/// `vestibule user end-sessions`.
pub(crate) async fn end_sessions(args: EndSessionsArgs) -> Result<(), String> {
    let cfg = load(args.config.as_ref())?;
    with_broker(&cfg, async |b| {
        let (id, matched_by) = resolve(b, &args.target).await?;
        let ended = b
            .end_sessions_by_operator(&id, args.tokens, WHO)
            .await
            .map_err(|e| refused(e, &id))?;
        if args.tokens {
            println!(
                "account {id} ({matched_by} `{}`): {} session(s) and {} token(s) ended",
                args.target, ended.sessions, ended.tokens
            );
        } else {
            println!(
                "account {id} ({matched_by} `{}`): {} session(s) ended",
                args.target, ended.sessions
            );
        }
        Ok(())
    })
    .await
}

/// `vestibule user groups`.
pub(crate) async fn groups(args: GroupsArgs) -> Result<(), String> {
    let cfg = load(args.config.as_ref())?;
    let change = if let Some(g) = args.set {
        Some(GroupChange::Set(g))
    } else if let Some(g) = args.add {
        Some(GroupChange::Add(g))
    } else if let Some(g) = args.remove {
        Some(GroupChange::Remove(g))
    } else if args.clear {
        Some(GroupChange::Clear)
    } else {
        None
    };
    with_broker(&cfg, async |b| {
        let (id, _) = resolve(b, &args.target).await?;
        if let Some(change) = &change {
            let changed = b
                .change_assigned_groups(&id, change, WHO)
                .await
                .map_err(|e| refused(e, &id))?;
            if args.json {
                println!(
                    "{}",
                    json!({ "id": id.as_str(), "before": changed.before, "after": changed.after })
                );
            } else {
                println!(
                    "account {id}: assigned groups were [{}], are now [{}]",
                    changed.before.join(","),
                    changed.after.join(",")
                );
            }
            return Ok(());
        }
        let a = b
            .account_view(&id)
            .await
            .map_err(|e| failed("read the account", &e))?
            .ok_or_else(|| format!("account {id} is gone"))?;
        if args.json {
            println!(
                "{}",
                json!({ "id": id.as_str(), "assigned_groups": a.assigned_groups, "groups": a.groups() })
            );
        } else {
            println!("assigned groups: {}", a.assigned_groups.join(","));
            println!("all groups: {}", a.groups().join(","));
        }
        Ok(())
    })
    .await
}
