//! The OpenAPI 3.1 document served at `GET /api/schema/`, generated from the handlers' `#[utoipa::path]` attributes.
//!
//! Core types do not derive `Serialize` and the JSON is written by hand in [`crate::json`], so the
//! shapes are described here by schema-only types that are never built: each mirrors one function of
//! `json.rs` or one request body the handlers read. The route list the document is checked against
//! comes from [`super::route_paths`], the same table the router is built from.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, PathItem, Required};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

/// Media type of the document, as drf-spectacular (NetBox) answers `?format=json`.
pub const MEDIA_TYPE: &str = "application/vnd.oai.openapi+json";

/// The name of the security scheme (NetBox's; the attributes spell it out, as they take only literals).
pub const SECURITY_SCHEME: &str = "tokenAuth";

/// The generated document: every route of [`super::routes`] with its bodies, answers and errors.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "nbtoken REST API",
        description = "NetBox's v2 API token system (the `/api/users/tokens/` and `/api/users/users/` \
            REST API), forward-auth for reverse proxies, and health and metrics endpoints. \
            Errors are JSON: `{\"detail\": \"…\"}`, or `{\"field\": [\"…\"]}` for validation errors (400)."
    ),
    paths(
        super::meta::root,
        super::meta::status,
        super::meta::authentication_check,
        super::meta::users_root,
        schema,
        super::tokens::list,
        super::tokens::create,
        super::tokens::provision,
        super::tokens::retrieve,
        super::tokens::replace,
        super::tokens::update,
        super::tokens::destroy,
        super::users::list,
        super::users::create,
        super::users::retrieve,
        super::users::replace,
        super::users::update,
        super::users::destroy,
        super::meta::healthz,
        super::meta::livez,
        super::meta::metrics,
        crate::forward::check,
    ),
    components(schemas(Detail, ErrorBody)),
    modifiers(&Extras),
    tags(
        (name = "api", description = "API root, status and authentication check"),
        (name = "tokens", description = "API tokens (NetBox 4.7 `users.Token`)"),
        (name = "users", description = "Users (NetBox `users.User`, the fields nbtoken keeps)"),
        (name = "forward-auth", description = "The check reverse proxies call before forwarding a request"),
        (name = "operations", description = "Health, liveness and metrics (no authentication)"),
    )
)]
pub struct ApiDoc;

/// The document as served, built once.
static DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(|| {
    // Serialising a tree of maps, strings and numbers cannot fail.
    serde_json::to_vec(&ApiDoc::openapi()).unwrap_or_default()
});

/// `GET /api/schema/`: this OpenAPI document, as NetBox serves its own there.
///
/// No authentication is needed, as in NetBox (drf-spectacular's `SERVE_PUBLIC`, `AllowAny`); an
/// `Authorization` header that is sent is still checked, so a bad token is refused as everywhere.
/// Always JSON (NetBox answers `?format=json` so; its default YAML is not offered).
#[utoipa::path(
    get,
    path = "/api/schema/",
    operation_id = "schema_retrieve",
    tag = "api",
    description = "This OpenAPI 3.1 document (JSON; `?format=json` is accepted and changes nothing).",
    security((), ("tokenAuth" = [])),
    responses(
        (status = 200, description = "The OpenAPI document", content_type = MEDIA_TYPE, body = Object),
        Refusals,
    )
)]
pub async fn schema() -> Response {
    let mut resp = DOCUMENT.as_slice().into_response();
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    resp
}

/// Adds what attributes cannot say: the security scheme, and the forward-auth paths that share one handler.
struct Extras;

impl Modify for Extras {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`Bearer nbt_<key>.<secret>` (v2 token) or `Token <40 hex characters>` (v1 token, \
                 if the v1 policy allows it).",
            ))),
        );
        // `/auth/forward` answers at two more paths: with a slash, and with the original
        // path appended (Envoy's `ext_authz` sends it so). Same handler, same operations.
        let Some(base) = doc.paths.paths.get(crate::forward::PATH).cloned() else { return };
        let mut slash = base.clone();
        rename_operations(&mut slash, "slash", None);
        let mut nested = base.clone();
        let param = ParameterBuilder::new()
            .name("path")
            .parameter_in(ParameterIn::Path)
            .required(Required::True)
            .description(Some("The original request path (Envoy appends it; may hold slashes)."))
            .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
            .build();
        rename_operations(&mut nested, "nested", Some(param));
        let mut base = base;
        rename_operations(&mut base, "", None);
        doc.paths.paths.insert(crate::forward::PATH.to_owned(), base);
        doc.paths.paths.insert(format!("{}/", crate::forward::PATH), slash);
        doc.paths.paths.insert(format!("{}/{{path}}", crate::forward::PATH), nested);
    }
}

/// Gives each operation of a forward-auth path item a unique id (`forward_auth_<suffix>_<method>`)
/// and, for the nested path, its path parameter.
fn rename_operations(item: &mut PathItem, suffix: &str, param: Option<utoipa::openapi::path::Parameter>) {
    let ops = [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
        ("head", &mut item.head),
        ("options", &mut item.options),
        ("trace", &mut item.trace),
    ];
    for (method, op) in ops {
        if let Some(op) = op {
            let sep = if suffix.is_empty() { "" } else { "_" };
            op.operation_id = Some(format!("forward_auth{sep}{suffix}_{method}"));
            if let Some(p) = &param {
                op.parameters.get_or_insert_with(Vec::new).push(p.clone());
            }
        }
    }
}

// ---- Shapes. None of these is ever built: they only describe JSON written in `json.rs`. ----

/// An error: `{"detail": "…"}`, sometimes with nbtoken's `hint`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Detail {
    /// NetBox's message.
    detail: String,
    /// nbtoken's advice beside NetBox's message (v1 policy refusals, unknown peppers).
    #[schema(nullable = false)]
    hint: Option<String>,
}

/// A 400: `{"field": ["message", …]}` for each invalid field, as Django REST framework answers
/// (`__all__` for the body as a whole), or `{"detail": "…"}` when the body or a header cannot be read.
#[derive(ToSchema)]
#[schema(value_type = Object)]
#[allow(dead_code)]
pub struct ErrorBody(BTreeMap<String, String>);

/// The refusals of every authenticated route.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Refusals {
    /// No credentials, a token that is refused (unknown, expired, disabled, from a network it is
    /// not allowed from, v1 under the `deny` policy), or not permitted (a read-only token writing).
    #[response(status = 403)]
    Forbidden(Detail),
    /// Too many failed authentication attempts from this client or on this key.
    #[response(status = 429, headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooMany(Detail),
    /// The token database is unavailable or could not complete the request.
    #[response(status = 503)]
    Unavailable(Detail),
}

/// Invalid input (400).
#[derive(IntoResponses)]
#[response(status = 400)]
#[allow(dead_code)]
pub struct Invalid(ErrorBody);

/// No such object, or not one the caller may see (404).
#[derive(IntoResponses)]
#[response(status = 404)]
#[allow(dead_code)]
pub struct NotFound(Detail);

/// The request body is over the size limit (413).
#[derive(IntoResponses)]
#[response(status = 413)]
#[allow(dead_code)]
pub struct TooLarge(Detail);

/// `GET /api/`
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ApiRoot {
    /// URL of `/api/users/`.
    users: String,
    /// URL of `/api/status/`.
    status: String,
    /// URL of `/api/authentication-check/`.
    #[serde(rename = "authentication-check")]
    authentication_check: String,
}

/// `GET /api/users/`
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UsersRoot {
    /// URL of `/api/users/tokens/`.
    tokens: String,
    /// URL of `/api/users/users/`.
    users: String,
}

/// `GET /api/status/`: NetBox's keys plus nbtoken's own.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Status {
    /// The NetBox version this API matches.
    #[serde(rename = "netbox-version")]
    netbox_version: String,
    /// `<netbox-version>-nbtoken-<nbtoken-version>`.
    #[serde(rename = "netbox-full-version")]
    netbox_full_version: String,
    /// Always empty.
    installed_apps: BTreeMap<String, String>,
    /// Always empty.
    plugins: BTreeMap<String, String>,
    /// Always 0.
    #[serde(rename = "rq-workers-running")]
    rq_workers_running: i64,
    /// nbtoken's version.
    #[serde(rename = "nbtoken-version")]
    nbtoken_version: String,
    /// `allow`, `warn` or `deny`.
    #[serde(rename = "v1-policy")]
    v1_policy: String,
    /// Ids of the configured peppers.
    #[serde(rename = "pepper-ids")]
    pepper_ids: Vec<u16>,
}

/// A user inside a token.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NestedUser {
    id: i64,
    url: String,
    display: String,
    username: String,
}

/// A token as NetBox 4.7 serialises it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Token {
    id: i64,
    url: String,
    display_url: String,
    /// The key (v2) or the last characters of the plaintext (v1).
    display: String,
    /// 1 or 2.
    #[schema(minimum = 1, maximum = 2)]
    version: u8,
    /// The 12-character key of a v2 token; null for v1.
    #[schema(required = true)]
    key: Option<String>,
    user: NestedUser,
    description: String,
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime, required = true)]
    expires: Option<String>,
    #[schema(format = DateTime, required = true)]
    last_used: Option<String>,
    /// nbtoken extension: the client address of the last recorded use.
    #[schema(required = true)]
    last_used_ip: Option<String>,
    enabled: bool,
    write_enabled: bool,
    /// The pepper a v2 token's digest uses; null for v1.
    #[schema(required = true)]
    pepper_id: Option<u16>,
    /// Networks the token may be used from; null for anywhere.
    #[schema(required = true)]
    allowed_ips: Option<Vec<String>>,
    /// The secret, only in the answer that created the token (v2: the bare secret; v1: the
    /// plaintext); null on every other read. It is never stored, so never shown again.
    #[schema(required = true)]
    token: Option<String>,
}

/// The answer of `POST /api/users/tokens/provision/`: a token without `pepper_id`, as NetBox's
/// `TokenProvisionSerializer` lists its fields, and with the secret in `token`, shown this once.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct ProvisionedToken {
    id: i64,
    url: String,
    display_url: String,
    display: String,
    /// Always 2.
    #[schema(minimum = 2, maximum = 2)]
    version: u8,
    key: String,
    user: NestedUser,
    description: String,
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime, required = true)]
    expires: Option<String>,
    #[schema(format = DateTime, required = true)]
    last_used: Option<String>,
    #[schema(required = true)]
    last_used_ip: Option<String>,
    enabled: bool,
    write_enabled: bool,
    #[schema(required = true)]
    allowed_ips: Option<Vec<String>>,
    /// The bare secret of the new v2 token; with the key: `Bearer nbt_<key>.<token>`.
    token: String,
}

/// A token in brief mode (`?brief=1`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BriefToken {
    id: i64,
    url: String,
    display: String,
    #[schema(minimum = 1, maximum = 2)]
    version: u8,
    #[schema(required = true)]
    key: Option<String>,
    enabled: bool,
    write_enabled: bool,
    description: String,
}

/// A token, full or brief.
#[derive(ToSchema)]
#[serde(untagged)]
// Never built, so the size of its variants does not matter.
#[allow(dead_code, clippy::large_enum_variant)]
pub enum AnyToken {
    /// Full.
    Full(Token),
    /// `?brief=1`.
    Brief(BriefToken),
}

/// A page of tokens.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TokenList {
    /// Matching tokens in all pages.
    count: u64,
    /// URL of the next page.
    #[schema(required = true)]
    next: Option<String>,
    /// URL of the previous page.
    #[schema(required = true)]
    previous: Option<String>,
    results: Vec<AnyToken>,
}

/// A user as NetBox serialises it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct User {
    id: i64,
    url: String,
    display_url: String,
    /// `username (First Last)` when a name is set.
    display: String,
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    is_active: bool,
    is_superuser: bool,
    #[schema(format = DateTime)]
    date_joined: String,
    #[schema(format = DateTime, required = true)]
    last_login: Option<String>,
    /// Always empty (nbtoken has no groups).
    groups: Vec<i64>,
    /// Always empty (nbtoken has no object permissions).
    permissions: Vec<i64>,
    /// nbtoken extension: may create tokens for other users.
    can_grant_tokens: bool,
}

/// A user in brief mode (`?brief=1`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BriefUser {
    id: i64,
    url: String,
    display: String,
    username: String,
}

/// A user, full or brief.
#[derive(ToSchema)]
#[serde(untagged)]
// Never built, so the size of its variants does not matter.
#[allow(dead_code, clippy::large_enum_variant)]
pub enum AnyUser {
    /// Full.
    Full(User),
    /// `?brief=1`.
    Brief(BriefUser),
}

/// A page of users.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UserList {
    /// Matching users in all pages.
    count: u64,
    /// URL of the next page.
    #[schema(required = true)]
    next: Option<String>,
    /// URL of the previous page.
    #[schema(required = true)]
    previous: Option<String>,
    results: Vec<AnyUser>,
}

/// The `user` of a token body: an id, `{"id": …}` or `{"username": …}`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum UserRef {
    /// The user's id.
    Id(i64),
    /// `{"id": …}` or `{"username": …}`.
    Lookup(UserLookup),
}

/// `{"id": …}` or `{"username": …}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserLookup {
    #[schema(nullable = false)]
    id: Option<i64>,
    #[schema(nullable = false)]
    username: Option<String>,
}

/// A token body (create, replace, change). Read-only fields sent back unchanged are ignored; other
/// unknown fields are a 400.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenWrite {
    /// The owner (default: the caller). Another user needs a superuser or `can_grant_tokens`.
    #[schema(nullable = false)]
    user: Option<UserRef>,
    /// 1 or 2 (default 2); fixed once created.
    #[schema(minimum = 1, maximum = 2)]
    version: Option<u8>,
    /// Accepted and ignored, as in NetBox 4.7: the server always draws the secret (a known value
    /// is imported with `nbtoken token import`).
    #[schema(nullable = false)]
    token: Option<String>,
    /// At most 200 characters.
    #[schema(nullable = false)]
    description: Option<String>,
    /// When it stops working (RFC 3339, or a naive time taken as UTC); null for never.
    #[schema(format = DateTime)]
    expires: Option<String>,
    #[schema(nullable = false)]
    enabled: Option<bool>,
    #[schema(nullable = false)]
    write_enabled: Option<bool>,
    /// The pepper of a v2 token (default: the newest); fixed once created.
    pepper_id: Option<u16>,
    /// Networks (CIDR) the token may be used from; null or empty for anywhere.
    allowed_ips: Option<Vec<String>>,
}

/// The body of `POST /api/users/tokens/provision/`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Provision {
    username: String,
    #[schema(format = Password)]
    password: String,
    #[schema(nullable = false)]
    description: Option<String>,
    #[schema(format = DateTime)]
    expires: Option<String>,
    #[schema(nullable = false)]
    enabled: Option<bool>,
    #[schema(nullable = false)]
    write_enabled: Option<bool>,
    allowed_ips: Option<Vec<String>>,
    /// Provisioned tokens are always v2: only 2 is accepted.
    #[schema(minimum = 2, maximum = 2)]
    version: Option<u8>,
}

/// A user body (create, replace, change). Read-only fields sent back are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UserWrite {
    /// Required on create: at most 150 letters, digits and `@.+-_`.
    #[schema(nullable = false)]
    username: Option<String>,
    /// Sets the password (hashed with Argon2id; never shown).
    #[schema(format = Password, nullable = false)]
    password: Option<String>,
    #[schema(nullable = false)]
    first_name: Option<String>,
    #[schema(nullable = false)]
    last_name: Option<String>,
    #[schema(nullable = false)]
    email: Option<String>,
    #[schema(nullable = false)]
    is_active: Option<bool>,
    #[schema(nullable = false)]
    is_superuser: Option<bool>,
    #[schema(nullable = false)]
    can_grant_tokens: Option<bool>,
}

/// `GET /healthz`, `GET /livez`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct Health {
    /// `ok`, or `unavailable`.
    status: String,
    /// Why it is unavailable.
    #[schema(nullable = false)]
    detail: Option<String>,
    /// When the store first found it so.
    #[schema(format = DateTime, nullable = false)]
    since: Option<String>,
}

/// Paging and brief mode, on every list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Paging {
    /// Page size (default 50, at most 1000; 0 means 1000).
    limit: Option<i64>,
    /// Results to skip.
    offset: Option<i64>,
    /// Any non-empty value: the brief shape.
    brief: Option<String>,
}

/// Filters of `GET /api/users/tokens/` (repeat a key for several values).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TokenFilters {
    id: Option<Vec<i64>>,
    /// Owner's id.
    user_id: Option<Vec<i64>>,
    /// Owner's username.
    user: Option<Vec<String>>,
    /// 1 or 2.
    version: Option<i64>,
    key: Option<Vec<String>>,
    /// Exact description.
    description: Option<Vec<String>>,
    pepper_id: Option<i64>,
    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    enabled: Option<bool>,
    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    write_enabled: Option<bool>,
}

/// Filters of `GET /api/users/users/` (repeat a key for several values).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UserFilters {
    id: Option<Vec<i64>>,
    username: Option<Vec<String>>,
    /// `true`/`1`/`yes` or `false`/`0`/`no`.
    is_active: Option<bool>,
}
