//! The HTTP admin API (`/admin/api/...` under the broker's mount): JSON over the broker's operator operations,
//! for personal access tokens carrying the `admin` scope, and its OpenAPI document.
//!
//! Every route is registered with [`utoipa_axum`]'s `routes!`, which adds the handler to the router and its
//! `#[utoipa::path]` to the document in one call: the document is generated from the very list the router is built
//! from, so neither can name a route the other lacks. An endpoint over another broker operation is one handler
//! with its `#[utoipa::path]` and one `.routes(routes!(handler))` line in [`parts`].
//!
//! Authentication is the `Authorization: Bearer` header only, checked by the [`Admin`] extractor (see there); a
//! session cookie is never read here, which is also why no route needs a CSRF token: a browser attaches cookies to
//! a forged cross-site request by itself, but never an `Authorization` header.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};
use utoipa::{IntoParams, OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vestibule::{
    AccountDetails, AccountLookup, AccountView, AdminError, AdminGrant, AdminRefusal, CreateAccountError, Credentials,
    GroupChange, PasswordAccount, Principal,
};
use vestibule_core::storage::{AccountQuery, AuditKind, AuditQuery, AuditRecord};
use vestibule_core::{AccountId, BoxError};

use crate::error::ErrorPage;
use crate::Vestibule;

/// The stable error codes of the admin API (`error.code`). Clients branch on these, never on `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorCode {
    /// 400: a malformed body or query, or a value out of range (the message says which).
    InvalidRequest,
    /// 401: no bearer token, or one that is unknown, expired, revoked, or whose account is disabled.
    Unauthorized,
    /// 403: a valid token without the `admin` scope, or whose account is in no `[admin] groups` group now.
    Forbidden,
    /// 404: no account matches the target, or no such route.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 409: the target is an email several accounts share; `candidates` lists their ids.
    Ambiguous,
    /// 409: the change collides with existing data (a login name taken).
    Conflict,
    /// 409: the identity to unlink is the account's last way in; delete the account instead.
    LastIdentity,
    /// 409: the account has no local password, so its groups are its sources' to say, not assignable.
    NotLocal,
    /// 429: too many bad tokens from this address; `Retry-After` says when to retry.
    TooManyRequests,
    /// 503: the database did not answer in time; retry after `Retry-After`.
    Unavailable,
    /// 500: something broke; the message carries a reference to give the operator (it is in the log).
    Internal,
}

impl ErrorCode {
    fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Ambiguous | ErrorCode::Conflict | ErrorCode::LastIdentity | ErrorCode::NotLocal => {
                StatusCode::CONFLICT
            }
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code for an answer that did not come from this module (the deadline's 503, axum's 405).
    fn of_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::BAD_REQUEST => ErrorCode::InvalidRequest,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// The stable code.
    code: ErrorCode,
    /// Words for a person; may change between versions.
    message: String,
    /// With `ambiguous`: the ids of the accounts the target could mean, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    candidates: Option<Vec<String>>,
}

/// A refusal or failure of an admin API route, answered as [`ErrorBody`].
#[derive(Debug)]
pub(crate) struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    candidates: Option<Vec<String>>,
    retry_after: Option<u32>,
    /// What broke, for the log (never shown).
    cause: Option<BoxError>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code,
            message: message.into(),
            candidates: None,
            retry_after: None,
            cause: None,
        }
    }

    fn unauthorized() -> Self {
        ApiError::new(
            ErrorCode::Unauthorized,
            "give a valid personal access token with the admin scope in `Authorization: Bearer`",
        )
    }

    fn internal(cause: BoxError) -> Self {
        ApiError {
            cause: Some(cause),
            ..ApiError::new(ErrorCode::Internal, "internal error")
        }
    }
}

/// A body that is no JSON or not the route's shape: `invalid_request`, in axum's words.
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, e.body_text())
    }
}

/// A query string not of the route's shape: `invalid_request`, in axum's words.
impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, e.body_text())
    }
}

impl From<vestibule::BrokerError> for ApiError {
    fn from(e: vestibule::BrokerError) -> Self {
        ApiError::internal(Box::new(e))
    }
}

/// The one mapping of the broker's operator refusals onto the API's codes.
impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let code = match &e {
            AdminError::Broker(_) => None,
            AdminError::NoSuchAccount | AdminError::NoSuchIdentity => Some(ErrorCode::NotFound),
            AdminError::LastIdentity => Some(ErrorCode::LastIdentity),
            AdminError::NotLocal => Some(ErrorCode::NotLocal),
            AdminError::InvalidGroup(_) => Some(ErrorCode::InvalidRequest),
            _ => None,
        };
        match (code, e) {
            (_, AdminError::Broker(e)) => e.into(),
            // Only after `resolve` found it: someone else deleted it in between.
            (Some(code), AdminError::NoSuchAccount) => ApiError::new(code, "the account was deleted meanwhile"),
            (Some(code), e) => ApiError::new(code, e.to_string()),
            (None, e) => ApiError::internal(Box::new(e)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if let Some(cause) = &self.cause {
            let reference = crate::request_id::current().unwrap_or_else(crate::request_id::new_id);
            let timeout = vestibule::is_store_timeout(cause.as_ref());
            tracing::error!(reference = %reference, error = %vestibule_core::error_chain(cause.as_ref()), "admin API request failed");
            if timeout {
                self.code = ErrorCode::Unavailable;
                self.message = "the database did not answer in time; try again in a moment".into();
                self.retry_after = Some(crate::error::RETRY_AFTER_SECS);
            } else {
                self.message = format!("internal error (reference {reference})").into();
            }
        } else {
            tracing::info!(status = self.code.status().as_u16(), code = ?self.code, "admin API request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.into_owned(),
                candidates: self.candidates,
            },
        };
        let mut res = (self.code.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == ErrorCode::Unauthorized {
            res.headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// An administrator's token, checked for this request: the extractor every admin route starts with.
///
/// It reads only `Authorization: Bearer`. The token is looked up through [`vestibule::Broker::authenticate`]
/// (with no cookie), so a wrong token spends the client address's allowance exactly as on `/verify` and the
/// other routes, and an address past it gets `429` without a lookup (the session layer leaves these paths alone,
/// see `layer.rs`, so nothing is counted twice). Then
/// [`vestibule::Broker::admin_grant`] checks, in the store, that the token is still there and unexpired, its
/// account enabled, the `admin` scope present and the account in an admin group now.
#[derive(Debug)]
pub(crate) struct Admin {
    grant: AdminGrant,
    ip: Option<String>,
}

impl Admin {
    /// The audit detail of a change made with this token.
    fn detail(&self) -> String {
        self.grant.audit_detail()
    }
}

impl FromRequestParts<Vestibule> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, v: &Vestibule) -> Result<Self, ApiError> {
        let bearer = crate::layer::bearer_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let ip = crate::client::client_ip(&v.inner.trusted_proxies, &parts.headers, &parts.extensions);
        // No cookie is passed: a session is never an administrator's credential here.
        let auth = v
            .broker()
            .authenticate(&Credentials {
                bearer: Some(bearer),
                ip,
                ..Credentials::default()
            })
            .await;
        if let Some(secs) = auth.throttled {
            return Err(ApiError {
                retry_after: Some(secs),
                ..ApiError::new(ErrorCode::TooManyRequests, "too many bad tokens from this address")
            });
        }
        let Some(Principal::Token(token)) = auth.principal else {
            return Err(ApiError::unauthorized());
        };
        match v.broker().admin_grant(&token).await? {
            Ok(grant) => Ok(Admin {
                grant,
                ip: ip.map(|ip| ip.to_string()),
            }),
            Err(AdminRefusal::MissingScope) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "this token does not carry the admin scope",
            )),
            Err(AdminRefusal::NotAdmin) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "the token's account is in none of the configured admin groups",
            )),
            Err(_) => Err(ApiError::unauthorized()),
        }
    }
}

/// The path parameter of every route on one account.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct Target {
    /// The account: its id, `source:subject` of one of its identities, a local login name, or its email
    /// (URL-encoded).
    target: String,
}

/// The one account `target` names (any form [`vestibule::Broker::find_accounts`] accepts), or `not_found` /
/// `ambiguous` (never a guess between several).
async fn resolve(v: &Vestibule, target: &str) -> Result<AccountId, ApiError> {
    match v.broker().find_accounts(target).await? {
        AccountLookup::Found { id, .. } => Ok(id),
        AccountLookup::Ambiguous { matched_by, candidates } => Err(ApiError {
            candidates: Some(candidates.iter().map(|c| c.as_str().to_owned()).collect()),
            ..ApiError::new(
                ErrorCode::Ambiguous,
                format!(
                    "`{target}` is the {matched_by} of {} accounts; name one by its id",
                    candidates.len()
                ),
            )
        }),
        AccountLookup::NotFound => Err(ApiError::new(
            ErrorCode::NotFound,
            "no account matches the target (as an account id, source:subject, local login name or email)",
        )),
    }
}

/// One identity of an account.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct IdentityJson {
    /// The source's id.
    source: String,
    /// The stable id the source asserts.
    subject: String,
    /// The login name last used.
    login: Option<String>,
    /// The email the source last asserted.
    email: Option<String>,
    /// Short group names, as of the last sign-in (or recheck).
    groups: Vec<String>,
    /// When it was linked (Unix seconds).
    created_at: i64,
    /// The last sign-in through it (Unix seconds).
    last_login_at: Option<i64>,
}

/// An account as an operator sees it: what `GET /admin/api/accounts` lists, and the start of what
/// `GET /admin/api/accounts/{target}` answers.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountJson {
    /// The account id.
    id: String,
    display_name: Option<String>,
    email: Option<String>,
    /// Whether the email is known to be the person's.
    email_verified: bool,
    /// A disabled account cannot sign in, and holds no session or token.
    disabled: bool,
    /// Unix seconds.
    created_at: i64,
    /// Every group of its identities and those an operator assigned, sorted: what `/verify` and `/me` see.
    groups: Vec<String>,
    /// The groups an operator assigned (local accounts only), sorted.
    assigned_groups: Vec<String>,
    /// Its ways in, oldest first.
    identities: Vec<IdentityJson>,
}

impl From<AccountView> for AccountJson {
    fn from(a: AccountView) -> Self {
        AccountJson {
            id: a.id.as_str().to_owned(),
            groups: a.groups(),
            display_name: a.display_name,
            email: a.email,
            email_verified: a.email_verified,
            disabled: a.disabled,
            created_at: a.created_at.0,
            assigned_groups: a.assigned_groups,
            identities: a
                .identities
                .into_iter()
                .map(|i| IdentityJson {
                    source: i.source.as_str().to_owned(),
                    subject: i.subject.as_str().to_owned(),
                    login: i.login,
                    email: i.email,
                    groups: i.groups,
                    created_at: i.created_at.0,
                    last_login_at: i.last_login_at.map(|t| t.0),
                })
                .collect(),
        }
    }
}

/// One session of an account. Never its id: only the start of the id's SHA-256, enough to tell sessions apart.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SessionJson {
    /// The first 16 hex digits of the SHA-256 of the session id (what `vestibule user show` prints).
    id: String,
    /// The source that signed it in.
    source: String,
    /// The client address at sign-in.
    ip: Option<String>,
    /// The browser at sign-in.
    user_agent: Option<String>,
    /// Unix seconds.
    created_at: i64,
    /// Its last request (to the minute; Unix seconds).
    last_seen_at: i64,
    /// Absolute expiry (Unix seconds).
    expires_at: i64,
}

/// One personal access token of an account: never its value.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TokenJson {
    /// Its public id (the part that names it in the audit log), not the secret.
    id: String,
    /// The owner's name for it.
    name: String,
    scopes: Vec<String>,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    expires_at: i64,
    /// Its last use (to the minute; Unix seconds).
    last_used_at: Option<i64>,
}

/// One passkey of an account.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PasskeyJson {
    /// The owner's name for it.
    name: String,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds.
    last_used_at: Option<i64>,
}

/// An account's second factors.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FactorsJson {
    /// Whether a confirmed authenticator app (TOTP) is set up.
    totp: bool,
    /// Oldest first.
    passkeys: Vec<PasskeyJson>,
    /// Unused recovery codes.
    recovery_codes_left: u32,
}

/// One account with everything it holds (what `vestibule user show --json` prints): the fields of
/// [`AccountJson`], then its sessions, tokens, second factors and latest audit events. No secret.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountDetailsJson {
    #[serde(flatten)]
    account: AccountJson,
    /// Its sessions, newest first (their number is how many it holds).
    sessions: Vec<SessionJson>,
    /// Its personal access tokens, newest first.
    tokens: Vec<TokenJson>,
    factors: FactorsJson,
    /// Its latest audit events (at most 20), newest first.
    recent_audit: Vec<AuditEventJson>,
}

impl From<AccountDetails> for AccountDetailsJson {
    fn from(d: AccountDetails) -> Self {
        AccountDetailsJson {
            account: d.account.into(),
            sessions: d
                .sessions
                .into_iter()
                .map(|s| SessionJson {
                    id: s.id_prefix().to_owned(),
                    source: s.source.as_str().to_owned(),
                    ip: s.ip,
                    user_agent: s.user_agent,
                    created_at: s.created_at.0,
                    last_seen_at: s.last_seen_at.0,
                    expires_at: s.expires_at.0,
                })
                .collect(),
            tokens: d
                .tokens
                .into_iter()
                .map(|t| TokenJson {
                    id: t.id,
                    name: t.name,
                    scopes: t.scopes,
                    created_at: t.created_at.0,
                    expires_at: t.expires_at.0,
                    last_used_at: t.last_used_at.map(|t| t.0),
                })
                .collect(),
            factors: FactorsJson {
                totp: d.factors.totp,
                passkeys: d
                    .factors
                    .passkeys
                    .into_iter()
                    .map(|p| PasskeyJson {
                        name: p.name,
                        created_at: p.created_at.0,
                        last_used_at: p.last_used_at.map(|t| t.0),
                    })
                    .collect(),
                recovery_codes_left: d.factors.recovery_codes_left,
            },
            recent_audit: d.recent_audit.into_iter().map(AuditEventJson::from).collect(),
        }
    }
}

/// `GET /admin/api/accounts/{target}`.
#[utoipa::path(
    get,
    path = "/admin/api/accounts/{target}",
    tag = "accounts",
    summary = "Show one account",
    description = "The account named by TARGET with everything it holds: identities, groups (all, and those assigned), sessions (each by the first 16 hex digits of its id's SHA-256, with address, browser, creation and last use), personal access tokens (never their values), second factors and its latest 20 audit events. `sessions` is the list; its length is how many sessions the account holds. Changes nothing.",
    params(Target),
    responses(
        (status = 200, description = "The account", body = AccountDetailsJson),
        (status = 404, description = "`not_found`: no account matches", body = ErrorBody),
        (status = 409, description = "`ambiguous`: an email several accounts share; `candidates` lists them", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn show_account(
    State(v): State<Vestibule>,
    _admin: Admin,
    Path(Target { target }): Path<Target>,
) -> Result<Response, ApiError> {
    let id = resolve(&v, &target).await?;
    let d = v
        .broker()
        .account_details(&id)
        .await?
        .ok_or(AdminError::NoSuchAccount)?;
    Ok(Json(AccountDetailsJson::from(d)).into_response())
}

/// The filters of `GET /admin/api/accounts` (those of `vestibule user list`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only accounts where this text occurs, case ignored and taken literally (`%` and `_` are no wildcards): in
    /// the display name, email, local login name, or an identity's subject or login name.
    search: Option<String>,
    /// Only accounts after this account id: the `next` of the previous page.
    after: Option<String>,
    /// At most this many accounts (1 to 1000, default 50).
    limit: Option<u32>,
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountPage {
    /// In account id order.
    accounts: Vec<AccountJson>,
    /// Pass as `after` for the next page; `null` when this page is the last.
    next: Option<String>,
}

/// `GET /admin/api/accounts`.
#[utoipa::path(
    get,
    path = "/admin/api/accounts",
    tag = "accounts",
    summary = "List or search accounts",
    description = "Accounts in account id order, each with its identities and groups (what `vestibule user list` shows; `GET /admin/api/accounts/{target}` has the rest). Page with `after` = the previous page's `next`. Changes nothing.",
    params(ListParams),
    responses(
        (status = 200, description = "One page", body = AccountPage),
        (status = 400, description = "`invalid_request`: `after` is no account id, a limit out of range, a malformed query", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_accounts(
    State(v): State<Vestibule>,
    _admin: Admin,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let limit = page_limit(p.limit)?;
    let after = p.after.as_deref().map(AccountId::new).transpose().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidRequest,
            "`after` takes an account id: the `next` of the page before",
        )
    })?;
    // One row more than the page: whether another page follows is then known, not guessed.
    let mut accounts = v
        .broker()
        .list_accounts(&AccountQuery {
            search: p.search,
            after,
            limit: i64::from(limit) + 1,
        })
        .await?;
    let more = accounts.len() > limit as usize;
    accounts.truncate(limit as usize);
    let next = if more {
        accounts.last().map(|a| a.id.as_str().to_owned())
    } else {
        None
    };
    Ok(Json(AccountPage {
        accounts: accounts.into_iter().map(AccountJson::from).collect(),
        next,
    })
    .into_response())
}

/// What deleting an account removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeletedJson {
    /// The account id (it names nothing now).
    id: String,
    /// Rows removed per table (`identities`, `sessions`, `access_tokens`, ...; tables with none included). The
    /// audit log keeps the account's rows.
    removed: BTreeMap<String, u64>,
}

/// `DELETE /admin/api/accounts/{target}`.
#[utoipa::path(
    delete,
    path = "/admin/api/accounts/{target}",
    tag = "accounts",
    summary = "Delete an account",
    description = "What `vestibule user delete --yes` does: the account goes with its identities, local password, sessions, remember-me series, tokens, second factors, mailed links, pending sign-ins and assigned groups, in one transaction; its sessions and tokens stop working on every node at once. The audit log keeps its rows. Audited as `account_deleted`, detail `api:<token id> by <account id>; <what went>`. There is no undo.",
    params(Target),
    responses(
        (status = 200, description = "Deleted", body = DeletedJson),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`ambiguous`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delete_account(
    State(v): State<Vestibule>,
    admin: Admin,
    Path(Target { target }): Path<Target>,
) -> Result<Response, ApiError> {
    let id = resolve(&v, &target).await?;
    let deleted = v.broker().delete_account(&id, &admin.detail()).await?;
    tracing::info!(account = %id, by = %admin.grant.account_id, ip = ?admin.ip, "admin API: account deleted");
    Ok(Json(DeletedJson {
        id: id.as_str().to_owned(),
        removed: deleted.rows.into_iter().map(|(t, n)| (t.to_owned(), n)).collect(),
    })
    .into_response())
}

/// The identity to remove.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnlinkJson {
    /// The source's id.
    source: String,
    /// The identity's subject at that source (`GET /admin/api/accounts/{target}` lists them).
    subject: String,
}

/// An identity removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UnlinkedJson {
    /// The account id.
    id: String,
    source: String,
    subject: String,
    /// How many sessions and tokens it had opened, all ended.
    ended: usize,
}

/// `POST /admin/api/accounts/{target}/unlink`.
#[utoipa::path(
    post,
    path = "/admin/api/accounts/{target}/unlink",
    tag = "accounts",
    summary = "Remove one way into an account",
    description = "What `vestibule user unlink` does: the identity goes, with the sessions, remember-me series and tokens it opened (ended on every node). Removing the local identity removes the password and the assigned groups too. Never the last way in (`last_identity`: delete the account instead). The account's verified address gets a notice. Audited as `identity_unlinked`, detail `api:<token id> by <account id>`.",
    params(Target),
    request_body(content = UnlinkJson, content_type = "application/json"),
    responses(
        (status = 200, description = "Removed", body = UnlinkedJson),
        (status = 400, description = "`invalid_request`: a malformed body", body = ErrorBody),
        (status = 404, description = "`not_found`: no such account, or the account has no such identity", body = ErrorBody),
        (status = 409, description = "`ambiguous`; or `last_identity`: it is the account's last way in, nothing was changed", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn unlink_identity(
    State(v): State<Vestibule>,
    admin: Admin,
    Path(Target { target }): Path<Target>,
    body: Result<Json<UnlinkJson>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let id = resolve(&v, &target).await?;
    let ended = v
        .broker()
        .unlink_identity_by_operator(&id, &body.source, &body.subject, &admin.detail())
        .await?;
    tracing::info!(account = %id, source = %body.source, by = %admin.grant.account_id, ip = ?admin.ip, "admin API: identity unlinked");
    Ok(Json(UnlinkedJson {
        id: id.as_str().to_owned(),
        source: body.source,
        subject: body.subject,
        ended,
    })
    .into_response())
}

/// What to end besides sessions.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndSessionsJson {
    /// Revoke every personal access token of the account too (default `false`).
    #[serde(default)]
    tokens: bool,
}

/// What ending an account's sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EndedJson {
    /// The account id.
    id: String,
    /// Sessions ended (their remember-me series end with them, uncounted).
    sessions_ended: usize,
    /// Tokens revoked (0 unless `tokens` was `true`).
    tokens_revoked: usize,
}

/// `POST /admin/api/accounts/{target}/end-sessions`.
#[utoipa::path(
    post,
    path = "/admin/api/accounts/{target}/end-sessions",
    tag = "accounts",
    summary = "End every session of an account",
    description = "What `vestibule user end-sessions` does (a lost laptop, a suspected theft): every session and remember-me series of the account ends, with `{\"tokens\": true}` every personal access token too, on every node at once. The account stays usable: its owner signs in again. The body is optional (none, or `null`, is `{}`). Audited as `sessions_revoked`, detail `api:<token id> by <account id>; <what ended>`.",
    params(Target),
    request_body(content = Option<EndSessionsJson>, content_type = "application/json"),
    responses(
        (status = 200, description = "Ended", body = EndedJson),
        (status = 400, description = "`invalid_request`: a malformed body", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`ambiguous`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn end_sessions(
    State(v): State<Vestibule>,
    admin: Admin,
    Path(Target { target }): Path<Target>,
    body: Result<Option<Json<Option<EndSessionsJson>>>, JsonRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    // No body, and a `null` one (which the document's optional body allows), both mean the defaults.
    let tokens = body.and_then(|Json(b)| b).is_some_and(|b| b.tokens);
    let id = resolve(&v, &target).await?;
    let ended = v
        .broker()
        .end_sessions_by_operator(&id, tokens, &admin.detail())
        .await?;
    tracing::info!(account = %id, tokens, by = %admin.grant.account_id, ip = ?admin.ip, "admin API: sessions ended");
    Ok(Json(EndedJson {
        id: id.as_str().to_owned(),
        sessions_ended: ended.sessions,
        tokens_revoked: ended.tokens,
    })
    .into_response())
}

/// An account's groups.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupsJson {
    /// The account id.
    id: String,
    /// The groups an operator assigned, sorted.
    assigned_groups: Vec<String>,
    /// All its groups (its identities' and the assigned ones), sorted: what `/verify` and `/me` see.
    groups: Vec<String>,
}

/// `GET /admin/api/accounts/{target}/groups`.
#[utoipa::path(
    get,
    path = "/admin/api/accounts/{target}/groups",
    tag = "accounts",
    summary = "An account's groups",
    description = "The groups an operator assigned to the account and all its groups. Changes nothing.",
    params(Target),
    responses(
        (status = 200, description = "Its groups", body = GroupsJson),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`ambiguous`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn show_groups(
    State(v): State<Vestibule>,
    _admin: Admin,
    Path(Target { target }): Path<Target>,
) -> Result<Response, ApiError> {
    let id = resolve(&v, &target).await?;
    let a = v.broker().account_view(&id).await?.ok_or(AdminError::NoSuchAccount)?;
    Ok(Json(GroupsJson {
        id: id.as_str().to_owned(),
        groups: a.groups(),
        assigned_groups: a.assigned_groups,
    })
    .into_response())
}

/// The groups to assign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetGroupsJson {
    /// Exactly these (repeats ignored; `[]` clears): each 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
    groups: Vec<String>,
}

/// Assigned groups before and after a change.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupsChangedJson {
    /// The account id.
    id: String,
    /// Sorted.
    before: Vec<String>,
    /// Sorted, without repeats.
    after: Vec<String>,
}

/// `PUT /admin/api/accounts/{target}/groups`.
#[utoipa::path(
    put,
    path = "/admin/api/accounts/{target}/groups",
    tag = "accounts",
    summary = "Set the groups assigned to a local account",
    description = "What `vestibule user groups --set` does: the account's assigned groups become exactly these. Only an account with a local password takes assigned groups (`not_local` otherwise: a source's groups are the source's to say). They count wherever groups do (`/verify`, `/me`, tokens, the second-factor policy, `[admin] groups`) from the next request on every node. Audited as `groups_changed`, detail `api:<token id> by <account id>; before [..]; after [..]`.",
    params(Target),
    request_body(content = SetGroupsJson, content_type = "application/json"),
    responses(
        (status = 200, description = "Set", body = GroupsChangedJson),
        (status = 400, description = "`invalid_request`: a malformed body, or a group name outside the rule", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`ambiguous`; or `not_local`: the account has no local password", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn set_groups(
    State(v): State<Vestibule>,
    admin: Admin,
    Path(Target { target }): Path<Target>,
    body: Result<Json<SetGroupsJson>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let id = resolve(&v, &target).await?;
    let changed = v
        .broker()
        .change_assigned_groups(&id, &GroupChange::Set(body.groups), &admin.detail())
        .await?;
    tracing::info!(account = %id, by = %admin.grant.account_id, ip = ?admin.ip, "admin API: assigned groups set");
    Ok(Json(GroupsChangedJson {
        id: id.as_str().to_owned(),
        before: changed.before,
        after: changed.after,
    })
    .into_response())
}

/// A local account to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccountJson {
    /// The login name: 1 to 128 characters, no spaces; unique by its canonical form (`Alice` is `alice`).
    username: String,
    /// The password, under the local source's policy (8 to 128 characters by default).
    #[schema(format = Password)]
    password: String,
    display_name: Option<String>,
    email: Option<String>,
    /// The operator vouches that the address is the person's: nothing is mailed and it counts as verified.
    /// Otherwise a confirmation link is mailed to it.
    #[serde(default)]
    email_verified: bool,
}

impl std::fmt::Debug for NewAccountJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccountJson")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A local account just created.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedJson {
    /// The new account's id.
    id: String,
    /// The login name as given.
    username: String,
    /// Whether a confirmation link was mailed to its unverified address.
    confirmation_sent: bool,
}

/// `POST /admin/api/accounts`.
#[utoipa::path(
    post,
    path = "/admin/api/accounts",
    tag = "accounts",
    summary = "Create a local account",
    description = "A local account with a password (what `vestibule user add` does). Audited as `account_created`, detail `api:<token id> by <account id>`.",
    request_body(content = NewAccountJson, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CreatedJson),
        (status = 400, description = "`invalid_request`: a malformed body, a bad name or address, a password outside the policy, or no local source configured", body = ErrorBody),
        (status = 409, description = "`conflict`: the login name is taken", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_account(
    State(v): State<Vestibule>,
    admin: Admin,
    body: Result<Json<NewAccountJson>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let new = PasswordAccount {
        username: body.username,
        display_name: body.display_name,
        email: body.email,
        email_verified: body.email_verified,
        password: body.password.into(),
    };
    let created = match v.broker().create_password_account(&new, &admin.detail()).await {
        Ok(c) => c,
        Err(CreateAccountError::Invalid(why)) => return Err(ApiError::new(ErrorCode::InvalidRequest, why)),
        Err(CreateAccountError::Taken) => return Err(ApiError::new(ErrorCode::Conflict, "the username is taken")),
        Err(CreateAccountError::NoPasswords) => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                "this server has no local password source to create accounts in",
            ))
        }
        Err(CreateAccountError::Broker(e)) => return Err(e.into()),
        Err(e) => return Err(ApiError::internal(Box::new(e))),
    };
    let body = CreatedJson {
        id: created.id.as_str().to_owned(),
        username: new.username,
        confirmation_sent: created.confirmation_sent,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// An account after it was disabled or enabled.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DisabledJson {
    /// The account id.
    id: String,
    /// Its state now.
    disabled: bool,
    /// How many sessions ended (0 when enabling).
    sessions_ended: usize,
}

/// Disables or enables the account `target` names, audited with the token and its account.
async fn set_disabled(v: &Vestibule, admin: &Admin, target: &str, disabled: bool) -> Result<Response, ApiError> {
    let id = resolve(v, target).await?;
    let ended = v
        .broker()
        .set_account_disabled_by_operator(&id, disabled, &admin.detail())
        .await?
        .ok_or(AdminError::NoSuchAccount)?;
    tracing::info!(account = %id, disabled, by = %admin.grant.account_id, ip = ?admin.ip, "admin API: account state set");
    Ok(Json(DisabledJson {
        id: id.as_str().to_owned(),
        disabled,
        sessions_ended: ended,
    })
    .into_response())
}

/// `POST /admin/api/accounts/{target}/disable`.
#[utoipa::path(
    post,
    path = "/admin/api/accounts/{target}/disable",
    tag = "accounts",
    summary = "Disable an account",
    description = "Every session, remember-me series and personal access token of the account ends at once (announced to every node on PostgreSQL); its verified address is mailed a notice. Audited as `account_disabled`, detail `api:<token id> by <account id>`. Disabling a disabled account changes nothing more.",
    params(Target),
    responses(
        (status = 200, description = "Disabled", body = DisabledJson),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`ambiguous`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn disable_account(
    State(v): State<Vestibule>,
    admin: Admin,
    Path(Target { target }): Path<Target>,
) -> Result<Response, ApiError> {
    set_disabled(&v, &admin, &target, true).await
}

/// `POST /admin/api/accounts/{target}/enable`.
#[utoipa::path(
    post,
    path = "/admin/api/accounts/{target}/enable",
    tag = "accounts",
    summary = "Enable an account",
    description = "The account can sign in again (it gets back no session or token). Audited as `account_enabled`, detail `api:<token id> by <account id>`.",
    params(Target),
    responses(
        (status = 200, description = "Enabled", body = DisabledJson),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`ambiguous`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn enable_account(
    State(v): State<Vestibule>,
    admin: Admin,
    Path(Target { target }): Path<Target>,
) -> Result<Response, ApiError> {
    set_disabled(&v, &admin, &target, false).await
}

/// The filters of `GET /admin/api/audit` (those of `vestibule audit`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Only this account's events (any TARGET form).
    account: Option<String>,
    /// Only events of this name (`login_failure`, `account_disabled`, ...); an unknown name is `invalid_request`.
    event: Option<String>,
    /// Only events from this client address.
    ip: Option<String>,
    /// Only events at or after this time (Unix seconds).
    since: Option<i64>,
    /// Only events older than this id: the `next` of the previous page.
    before: Option<i64>,
    /// At most this many events (1 to 1000, default 50).
    limit: Option<u32>,
}

/// One audit event.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventJson {
    /// Insertion order; newest first in a page.
    id: i64,
    /// Unix seconds.
    at: i64,
    /// The event name.
    event: String,
    account_id: Option<String>,
    source: Option<String>,
    subject: Option<String>,
    ip: Option<String>,
    detail: Option<String>,
}

impl From<AuditRecord> for AuditEventJson {
    fn from(r: AuditRecord) -> Self {
        AuditEventJson {
            id: r.id,
            at: r.at.0,
            event: r.event,
            account_id: r.account_id,
            source: r.source,
            subject: r.subject,
            ip: r.ip,
            detail: r.detail,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditPage {
    /// Newest first.
    events: Vec<AuditEventJson>,
    /// Pass as `before` for the next (older) page; `null` when this page is the last.
    next: Option<i64>,
}

/// The most one page holds.
const MAX_PAGE: u32 = 1000;

/// A page's `limit`: 50 when not given, refused outside 1 to [`MAX_PAGE`].
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(limit)
}

/// `GET /admin/api/audit`.
#[utoipa::path(
    get,
    path = "/admin/api/audit",
    tag = "audit",
    summary = "Read the audit log",
    description = "Audit events, newest first, with the filters of `vestibule audit` combined. Page with `before` = the previous page's `next`. The fields are what the broker wrote: never a password or a token.",
    params(AuditParams),
    responses(
        (status = 200, description = "One page", body = AuditPage),
        (status = 400, description = "`invalid_request`: an unknown event name, a limit out of range, a malformed query", body = ErrorBody),
        (status = 404, description = "`not_found`: `account` matches no account", body = ErrorBody),
        (status = 409, description = "`ambiguous`: `account` is an email several accounts share", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
async fn audit(
    State(v): State<Vestibule>,
    _admin: Admin,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    if let Some(e) = &p.event {
        if AuditKind::parse(e).is_none() {
            let names: Vec<&str> = AuditKind::ALL.iter().map(|k| k.as_str()).collect();
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("unknown event `{e}`; events are: {}", names.join(", ")),
            ));
        }
    }
    let limit = page_limit(p.limit)?;
    let account_id = match &p.account {
        Some(target) => Some(resolve(&v, target).await?.as_str().to_owned()),
        None => None,
    };
    // One row more than the page: whether another page follows is then known, not guessed.
    let mut rows = v
        .broker()
        .audit_log(&AuditQuery {
            account_id,
            event: p.event,
            ip: p.ip,
            since: p.since.map(vestibule_core::Timestamp),
            before_id: p.before,
            limit: i64::from(limit) + 1,
        })
        .await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(|r| r.id) } else { None };
    Ok(Json(AuditPage {
        events: rows.into_iter().map(AuditEventJson::from).collect(),
        next,
    })
    .into_response())
}

/// `GET /admin/api/openapi.json`.
#[utoipa::path(
    get,
    path = "/admin/api/openapi.json",
    tag = "meta",
    summary = "This document",
    description = "The OpenAPI document of the admin API. Public: it describes the routes and reveals no data.",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")),
    security(())
)]
async fn openapi_document(State(v): State<Vestibule>) -> Response {
    Json(document(&v)).into_response()
}

/// The document's frame: title, version, the bearer scheme and the shared schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Vestibule admin API",
        description = "Operator actions over HTTP, for personal access tokens with the `admin` scope held by members of `[admin] groups`. Every error is `{\"error\": {\"code\", \"message\"}}` with a stable `code` (schema `ErrorCode`)."
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode))
)]
struct Frame;

/// The admin routes and their document, from one list: `routes!` registers a handler in the router and its
/// `#[utoipa::path]` in the document together.
fn parts() -> (axum::Router<Vestibule>, OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(Frame::openapi())
        .routes(routes!(list_accounts))
        .routes(routes!(show_account))
        .routes(routes!(delete_account))
        .routes(routes!(create_account))
        .routes(routes!(disable_account))
        .routes(routes!(enable_account))
        .routes(routes!(unlink_identity))
        .routes(routes!(end_sessions))
        .routes(routes!(show_groups))
        .routes(routes!(set_groups))
        .routes(routes!(audit))
        .routes(routes!(openapi_document))
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    api.components.get_or_insert_with(Default::default).add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("vst_ personal access token with the admin scope")
                .build(),
        ),
    );
    add_refusals(&mut api);
    (router, api)
}

/// Adds the answers every authenticated route can give (no or bad token, not an administrator, throttled, the
/// database too slow, a failure) to each operation that requires the bearer scheme, so that no route's list can
/// forget one.
fn add_refusals(api: &mut OpenApi) {
    let refusals = [
        (
            "401",
            "`unauthorized`: no bearer token, or an unknown, expired or revoked one, or one of a disabled account",
        ),
        (
            "403",
            "`forbidden`: the token lacks the admin scope, or its account is in no admin group now",
        ),
        (
            "429",
            "`too_many_requests`: too many bad tokens from this address; see `Retry-After`",
        ),
        (
            "503",
            "`unavailable`: the database did not answer in time; see `Retry-After`",
        ),
        (
            "500",
            "`internal`: a failure, with a reference that is in the server's log",
        ),
    ];
    for item in api.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let secured = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().any(|req| req != &Default::default()));
            if !secured {
                continue;
            }
            for (status, description) in refusals {
                let response = ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build();
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert(response.into());
            }
        }
    }
}

/// The document for this deployment: the routes' paths relative to the broker's public URL.
fn document(v: &Vestibule) -> OpenApi {
    static FRAME: OnceLock<OpenApi> = OnceLock::new();
    let mut api = FRAME.get_or_init(|| parts().1).clone();
    api.servers = Some(vec![utoipa::openapi::Server::new(v.broker().base_url())]);
    api
}

/// The admin API's OpenAPI document, as served at `GET /admin/api/openapi.json` without the deployment's server
/// URL: for tests, client generators and documentation.
pub fn openapi() -> OpenApi {
    parts().1
}

/// The admin routes, behind the security headers and the request deadline but not the session layer: nothing
/// here reads a cookie. Answers that did not come from a handler (the deadline's 503, a wrong method's 405, an
/// unknown path under `/admin/api/`) are turned into the API's JSON errors too.
pub(crate) fn routes(v: &Vestibule) -> axum::Router<Vestibule> {
    parts()
        .0
        .route("/admin/api", axum::routing::any(no_route))
        .route("/admin/api/", axum::routing::any(no_route))
        .route("/admin/api/{*rest}", axum::routing::any(no_route))
        .layer(
            tower::ServiceBuilder::new()
                .layer(crate::headers::SecurityHeadersLayer::new(v.clone()))
                .layer(axum::middleware::map_response(json_errors))
                .layer(crate::deadline::DeadlineLayer::new(v.inner.request_timeout)),
        )
}

/// A path under `/admin/api/` that is no route: the API's own `not_found`, not the broker's HTML page.
async fn no_route() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route in the admin API")
}

/// Any error answer that is not yet the API's JSON (an error page marker, an empty 405) becomes one, with the
/// code for its status.
async fn json_errors(mut res: Response) -> Response {
    let page = res.extensions_mut().remove::<ErrorPage>();
    let status = res.status();
    let is_json = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|c| c.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || (is_json && page.is_none()) {
        return res;
    }
    let code = ErrorCode::of_status(status);
    let message = match page {
        Some(p) => p.message.into_owned(),
        None => status.canonical_reason().unwrap_or("error").to_ascii_lowercase(),
    };
    let retry_after = res.headers().get(http::header::RETRY_AFTER).cloned();
    let mut out = (
        status,
        Json(ErrorBody {
            error: ErrorDetail {
                code,
                message,
                candidates: None,
            },
        }),
    )
        .into_response();
    if let Some(r) = retry_after {
        out.headers_mut().insert(http::header::RETRY_AFTER, r);
    }
    out
}
