//! Routes of the NetBox-compatible API, and what every handler shares.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;
use nbtoken_manage::Actor;
use nbtoken_store::{Store, User};
use serde_json::Value;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::json::{BaseUrl, Query};
use crate::AppState;

/// Declares the handlers of a collection (`list` and `create`, for GET and POST) with their
/// OpenAPI descriptions. `list` names the operation that lists and `render` the `json`
/// function that shows one object; the invoking module supplies `filter(&query)` (the
/// listing's filter from the query string) and `make(&state, &actor, &body, &base)` (the
/// created object's JSON).
macro_rules! collection_handlers {
    (
        path: $path:tt,
        tag: $tag:tt,
        list: ($list_doc:tt, $list_op:tt, $filters:ident, $page_doc:tt, $page:ident, $list:ident, $render:ident),
        create: ($create_doc:tt, $create_op:tt, $write:ident, $created_doc:tt, $read:ident) $(,)?
    ) => {
        #[doc = $list_doc]
        #[utoipa::path(
                            get,
                            path = $path,
                            operation_id = $list_op,
                            tag = $tag,
                            params(crate::api::schema::Paging, crate::api::schema::$filters),
                            security(("tokenAuth" = [])),
                            responses(
                                (status = 200, description = $page_doc, body = crate::api::schema::$page),
                                crate::api::schema::Invalid,
                                crate::api::schema::Refusals,
                            )
                        )]
        pub async fn list(
            ::axum::extract::State(state): ::axum::extract::State<::std::sync::Arc<crate::AppState>>,
            p: crate::auth::Principal,
            ctx: crate::api::Ctx,
        ) -> crate::error::ApiResult<::axum::Json<::serde_json::Value>> {
            let actor = crate::api::actor(&state, &p).await?;
            let (q, page) = (&ctx.query, ctx.query.page());
            let (count, rows) = state.ops().$list(&actor, filter(q)?, page).await?;
            let results = rows.iter().map(|r| crate::json::$render(&ctx.base, r, q.brief())).collect();
            Ok(::axum::Json(crate::json::paginated(&ctx.base, $path, q, page, count, results)))
        }

        #[doc = $create_doc]
        #[utoipa::path(
                            post,
                            path = $path,
                            operation_id = $create_op,
                            tag = $tag,
                            request_body = crate::api::schema::$write,
                            security(("tokenAuth" = [])),
                            responses(
                                (status = 201, description = $created_doc, body = crate::api::schema::$read),
                                crate::api::schema::Invalid,
                                crate::api::schema::TooLarge,
                                crate::api::schema::Refusals,
                            )
                        )]
        pub async fn create(
            ::axum::extract::State(state): ::axum::extract::State<::std::sync::Arc<crate::AppState>>,
            p: crate::auth::Principal,
            ctx: crate::api::Ctx,
            body: ::axum::body::Bytes,
        ) -> crate::error::ApiResult<::axum::response::Response> {
            let actor = crate::api::actor(&state, &p).await?;
            Ok(crate::api::created(make(&state, &actor, &body, &ctx.base).await?))
        }
    };
}

/// Declares the handlers of one object at `…/{id}/` (`retrieve`, `update`, `replace` and
/// `destroy`, for GET, PATCH, PUT and DELETE) with their OpenAPI descriptions. `get` and
/// `render` name the operation that reads the object and the `json` function that shows it;
/// the invoking module supplies the rest: `change(&state, &actor, id, &body, full)` (`full`:
/// a PUT) and `remove(&state, &actor, id)`.
macro_rules! object_handlers {
    (
        path: $path:tt,
        tag: $tag:tt,
        id: $id_doc:tt,
        what: $what:tt,
        get: $get:ident,
        render: $render:ident,
        retrieve: ($get_doc:tt, $get_op:tt, $read_doc:tt, $read:ident),
        update: ($patch_doc:tt, $patch_op:tt, $changed_doc:tt, $write:ident),
        replace: ($put_doc:tt, $put_op:tt),
        destroy: ($delete_doc:tt, $delete_op:tt, $deleted_doc:tt) $(,)?
    ) => {
        #[doc = $get_doc]
        #[utoipa::path(
            get,
            path = $path,
            operation_id = $get_op,
            tag = $tag,
            params(("id" = i64, Path, description = $id_doc)),
            security(("tokenAuth" = [])),
            responses(
                (status = 200, description = $read_doc, body = crate::api::schema::$read),
                crate::api::schema::NotFound,
                crate::api::schema::Refusals,
            )
        )]
        pub async fn retrieve(
            ::axum::extract::State(state): ::axum::extract::State<::std::sync::Arc<crate::AppState>>,
            p: crate::auth::Principal,
            ctx: crate::api::Ctx,
            ::axum::extract::Path(id): ::axum::extract::Path<String>,
        ) -> crate::error::ApiResult<::axum::Json<::serde_json::Value>> {
            let actor = crate::api::actor(&state, &p).await?;
            let found = state.ops().$get(&actor, crate::api::path_id(&id, $what)?).await?;
            Ok(::axum::Json(crate::json::$render(&ctx.base, &found, ctx.query.brief())))
        }

        object_handlers!(@change patch, update, false, $patch_doc, $patch_op, $path, $tag, $id_doc, $changed_doc, $read, $write, $render);
        object_handlers!(@change put, replace, true, $put_doc, $put_op, $path, $tag, $id_doc, $changed_doc, $read, $write, $render);

        #[doc = $delete_doc]
        #[utoipa::path(
            delete,
            path = $path,
            operation_id = $delete_op,
            tag = $tag,
            params(("id" = i64, Path, description = $id_doc)),
            security(("tokenAuth" = [])),
            responses(
                (status = 204, description = $deleted_doc),
                crate::api::schema::NotFound,
                crate::api::schema::Refusals,
            )
        )]
        pub async fn destroy(
            ::axum::extract::State(state): ::axum::extract::State<::std::sync::Arc<crate::AppState>>,
            p: crate::auth::Principal,
            ::axum::extract::Path(id): ::axum::extract::Path<String>,
        ) -> crate::error::ApiResult<::axum::response::Response> {
            let actor = crate::api::actor(&state, &p).await?;
            remove(&state, &actor, &id).await?;
            Ok(crate::api::no_content())
        }
    };
    // PATCH and PUT: the same but for the method, the names and `full`.
    (@change $method:ident, $name:ident, $full:tt, $doc:tt, $op:tt, $path:tt, $tag:tt, $id_doc:tt,
        $changed_doc:tt, $read:ident, $write:ident, $render:ident) => {
        #[doc = $doc]
        #[utoipa::path(
            $method,
            path = $path,
            operation_id = $op,
            tag = $tag,
            params(("id" = i64, Path, description = $id_doc)),
            request_body = crate::api::schema::$write,
            security(("tokenAuth" = [])),
            responses(
                (status = 200, description = $changed_doc, body = crate::api::schema::$read),
                crate::api::schema::Invalid,
                crate::api::schema::NotFound,
                crate::api::schema::TooLarge,
                crate::api::schema::Refusals,
            )
        )]
        pub async fn $name(
            ::axum::extract::State(state): ::axum::extract::State<::std::sync::Arc<crate::AppState>>,
            p: crate::auth::Principal,
            ctx: crate::api::Ctx,
            ::axum::extract::Path(id): ::axum::extract::Path<String>,
            body: ::axum::body::Bytes,
        ) -> crate::error::ApiResult<::axum::Json<::serde_json::Value>> {
            let actor = crate::api::actor(&state, &p).await?;
            let changed = change(&state, &actor, &id, &body, $full).await?;
            Ok(::axum::Json(crate::json::$render(&ctx.base, &changed, false)))
        }
    };
}

pub mod meta;
pub mod schema;
pub mod tokens;
pub mod users;

/// Every route. `/api/…` routes run the authentication middleware and carry `API-Version`;
/// `/auth/forward` is the forward-auth check; every request is logged and timed.
pub fn routes(state: Arc<AppState>) -> Router {
    let mut api = api_routes().router;
    // Only on a store that leaves management to NetBox (the kind of store never changes while
    // serving), so nbtoken's own store pays nothing for it. Inside authentication: an anonymous
    // write is refused as NetBox refuses it, first.
    if state.store.management_refused().is_some() {
        api = api.route_layer(middleware::from_fn_with_state(state.clone(), management_guard));
    }
    let api = api.route_layer(crate::auth::AuthLayer(state.clone()));
    other_routes()
        .router
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// Every path the router serves, in axum's syntax (`{id}`, `{*path}`), taken from the same
/// tables [`routes`] is built from: the list the OpenAPI document ([`schema`]) is checked against.
pub fn route_paths() -> Vec<&'static str> {
    let mut paths = api_routes().paths;
    paths.extend(other_routes().paths);
    paths
}

/// A router being built that remembers the path of each route it is given.
struct Table {
    router: Router<Arc<AppState>>,
    paths: Vec<&'static str>,
}

impl Table {
    fn new() -> Self {
        Self { router: Router::new(), paths: Vec::new() }
    }

    fn route(mut self, path: &'static str, methods: MethodRouter<Arc<AppState>>) -> Self {
        self.router = self.router.route(path, methods);
        self.paths.push(path);
        self
    }
}

/// The `/api/…` routes (behind the authentication middleware).
fn api_routes() -> Table {
    Table::new()
        .route("/api/", get(meta::root))
        .route("/api/status/", get(meta::status))
        .route("/api/authentication-check/", get(meta::authentication_check))
        .route("/api/schema/", get(schema::schema))
        .route("/api/users/", get(meta::users_root))
        .route("/api/users/tokens/", get(tokens::list).post(tokens::create))
        .route("/api/users/tokens/provision/", post(tokens::provision))
        .route(
            "/api/users/tokens/{id}/",
            get(tokens::retrieve).put(tokens::replace).patch(tokens::update).delete(tokens::destroy),
        )
        .route("/api/users/users/", get(users::list).post(users::create))
        .route(
            "/api/users/users/{id}/",
            get(users::retrieve).put(users::replace).patch(users::update).delete(users::destroy),
        )
}

/// Operations endpoints and forward-auth (each authenticates, or not, on its own).
fn other_routes() -> Table {
    Table::new()
        .route("/healthz", get(meta::healthz))
        .route("/livez", get(meta::livez))
        .route("/metrics", get(meta::metrics))
        // Any method: Envoy sends the original one, and the original path after the prefix.
        .route(crate::forward::PATH, any(crate::forward::check))
        .route("/auth/forward/", any(crate::forward::check))
        .route("/auth/forward/{*path}", any(crate::forward::check))
}

/// On a store that leaves user and token management to NetBox, every write to `/api/users/`
/// (provisioning included) is a 405 that says to use NetBox, before its body is read.
async fn management_guard(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let writes = !request.method().is_safe();
    match state.store.management_refused() {
        Some(why) if writes && request.uri().path().starts_with("/api/users/") => {
            let mut response = ApiError::detail(StatusCode::METHOD_NOT_ALLOWED, why).into_response();
            response.headers_mut().insert(
                axum::http::header::ALLOW,
                axum::http::HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            response
        }
        _ => next.run(request).await,
    }
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    use axum::http::Method;
    // DRF's text names the method; an extension method is whatever the client sent, so it is not repeated.
    let standard = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    if standard.contains(&method) {
        ApiError::detail(StatusCode::METHOD_NOT_ALLOWED, format!("Method \"{method}\" not allowed."))
    } else {
        ApiError::detail(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
    }
}

async fn not_found() -> ApiError {
    ApiError::detail(StatusCode::NOT_FOUND, "Not found.")
}

/// The base URL and query string of a request.
pub struct Ctx {
    /// Scheme and host for absolute URLs.
    pub base: BaseUrl,
    /// Parsed query parameters.
    pub query: Query,
}

impl FromRequestParts<Arc<AppState>> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let fallback = state.config.bind.to_string();
        let peer_trusted = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .is_some_and(|c| crate::client_ip::is_trusted(c.0.ip(), &state.config.trusted_proxies));
        let base = crate::json::base_for_request(&parts.headers, peer_trusted, &state.config, &fallback);
        Ok(Ctx { base, query: Query::from_parts(parts)? })
    }
}

/// The authenticated user's account, loaded for handlers that need its flags.
///
/// From the cache when it holds a fresh copy: it is dropped, like the user's token
/// rows, whenever the user changes (here, or on PostgreSQL anywhere).
pub async fn current_user(state: &AppState, p: &Principal) -> ApiResult<User> {
    if let Some(u) = state.cache.user(p.user_id) {
        return Ok(User::clone(&u));
    }
    let generation = state.cache.generation();
    let user = state.store.user(p.user_id).await?.ok_or_else(ApiError::not_authenticated)?;
    state.cache.insert_user(Arc::new(user.clone()), generation);
    Ok(user)
}

/// The authenticated caller as the operations see it.
pub async fn actor(state: &AppState, p: &Principal) -> ApiResult<Actor> {
    Ok(Actor::User(current_user(state, p).await?))
}

/// Parses an id from the path; anything but a positive integer is a 404, as in NetBox.
/// Only decimal digits name an object: `+1`, ` 1` or `1_0` are not ids (404), so each object has one URL.
pub fn path_id(raw: &str, what: &str) -> ApiResult<i64> {
    Some(raw)
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|r| r.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(what))
}

/// 201 with a JSON body and, as DRF sends, a `Location` header with the object's `url`.
pub fn created(body: Value) -> Response {
    let location = body.get("url").and_then(Value::as_str).and_then(|u| HeaderValue::from_str(u).ok());
    let mut resp = (StatusCode::CREATED, axum::Json(body)).into_response();
    if let Some(l) = location {
        resp.headers_mut().insert(axum::http::header::LOCATION, l);
    }
    resp
}

/// 204 with no body.
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
