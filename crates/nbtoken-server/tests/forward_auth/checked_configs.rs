//! Traefik and Envoy are not packaged by Debian, so their configurations are checked, not run:
//! every key of docs/forward-auth/traefik.yml and envoy.yaml must be an option their published
//! documentation names for that place, no deprecated option may be used, and the settings the
//! forward-auth contract depends on must be there.
//!
//! The option lists are small schemas: each message (Envoy's protobuf messages, Traefik's
//! dynamic-configuration objects) with its documented fields and what each field holds. Envoy's
//! come from its v3 API reference (`ext_authz.proto`, `http_connection_manager.proto`,
//! `route_components.proto`, `listener.proto`, `cluster.proto`, `endpoint_components.proto`,
//! `address.proto`, `string.proto`); Traefik's from its routing-configuration reference
//! (ForwardAuth and Headers middlewares, routers, services).

use serde_yaml::Value;

use super::proxies::read_doc;

/// What a field holds: a scalar (or a list of scalars), a message (or a list of them), a map
/// from names the user chooses to a message, or an Envoy `Any` resolved by its `@type`.
#[derive(Clone, Copy)]
enum Holds {
    Scalar,
    Msg(&'static str),
    Named(&'static str),
    Any,
}
use Holds::{Any, Msg, Named, Scalar};

type Fields = &'static [(&'static str, Holds)];
type Schema = &'static [(&'static str, Fields)];

const STRING_MATCHER: Fields = &[
    ("exact", Scalar),
    ("prefix", Scalar),
    ("suffix", Scalar),
    ("safe_regex", Scalar),
    ("contains", Scalar),
    ("ignore_case", Scalar),
];
const LIST_STRING_MATCHER: Fields = &[("patterns", Msg("StringMatcher"))];
const HEADER_VALUE: Fields = &[("key", Scalar), ("value", Scalar), ("raw_value", Scalar)];
const ADDRESS: Fields =
    &[("socket_address", Msg("SocketAddress")), ("pipe", Scalar), ("envoy_internal_address", Scalar)];

const ENVOY: Schema = &[
    (
        "Bootstrap",
        &[
            ("node", Scalar),
            ("static_resources", Msg("StaticResources")),
            ("dynamic_resources", Scalar),
            ("cluster_manager", Scalar),
            ("admin", Scalar),
            ("layered_runtime", Scalar),
            ("overload_manager", Scalar),
            ("stats_sinks", Scalar),
            ("stats_config", Scalar),
        ],
    ),
    ("StaticResources", &[("listeners", Msg("Listener")), ("clusters", Msg("Cluster")), ("secrets", Scalar)]),
    (
        "Listener",
        &[
            ("name", Scalar),
            ("address", Msg("Address")),
            ("additional_addresses", Scalar),
            ("stat_prefix", Scalar),
            ("filter_chains", Msg("FilterChain")),
            ("default_filter_chain", Msg("FilterChain")),
            ("listener_filters", Scalar),
            ("per_connection_buffer_limit_bytes", Scalar),
            ("socket_options", Scalar),
            ("access_log", Scalar),
            ("traffic_direction", Scalar),
        ],
    ),
    ("Address", ADDRESS),
    (
        "SocketAddress",
        &[
            ("protocol", Scalar),
            ("address", Scalar),
            ("port_value", Scalar),
            ("named_port", Scalar),
            ("resolver_name", Scalar),
            ("ipv4_compat", Scalar),
        ],
    ),
    (
        "FilterChain",
        &[
            ("filter_chain_match", Scalar),
            ("filters", Msg("Filter")),
            ("transport_socket", Scalar),
            ("name", Scalar),
        ],
    ),
    ("Filter", &[("name", Scalar), ("typed_config", Any)]),
    (
        "HttpConnectionManager",
        &[
            ("@type", Scalar),
            ("codec_type", Scalar),
            ("stat_prefix", Scalar),
            ("rds", Scalar),
            ("route_config", Msg("RouteConfiguration")),
            ("http_filters", Msg("HttpFilter")),
            ("access_log", Scalar),
            ("use_remote_address", Scalar),
            ("xff_num_trusted_hops", Scalar),
            ("skip_xff_append", Scalar),
            ("original_ip_detection_extensions", Scalar),
            ("internal_address_config", Scalar),
            ("via", Scalar),
            ("generate_request_id", Scalar),
            ("preserve_external_request_id", Scalar),
            ("always_set_request_id_in_response", Scalar),
            ("server_name", Scalar),
            ("server_header_transformation", Scalar),
            ("stream_idle_timeout", Scalar),
            ("request_timeout", Scalar),
            ("request_headers_timeout", Scalar),
            ("drain_timeout", Scalar),
            ("common_http_protocol_options", Scalar),
            ("http_protocol_options", Scalar),
            ("http2_protocol_options", Scalar),
            ("normalize_path", Scalar),
            ("merge_slashes", Scalar),
            ("path_with_escaped_slashes_action", Scalar),
            ("strip_any_host_port", Scalar),
            ("local_reply_config", Scalar),
            ("upgrade_configs", Scalar),
            ("tracing", Scalar),
        ],
    ),
    (
        "RouteConfiguration",
        &[
            ("name", Scalar),
            ("virtual_hosts", Msg("VirtualHost")),
            ("internal_only_headers", Scalar),
            ("request_headers_to_add", Msg("HeaderValueOption")),
            ("request_headers_to_remove", Scalar),
            ("response_headers_to_add", Msg("HeaderValueOption")),
            ("response_headers_to_remove", Scalar),
            ("validate_clusters", Scalar),
        ],
    ),
    (
        "VirtualHost",
        &[
            ("name", Scalar),
            ("domains", Scalar),
            ("routes", Msg("Route")),
            ("require_tls", Scalar),
            ("request_headers_to_add", Msg("HeaderValueOption")),
            ("request_headers_to_remove", Scalar),
            ("response_headers_to_add", Msg("HeaderValueOption")),
            ("response_headers_to_remove", Scalar),
            ("typed_per_filter_config", Scalar),
        ],
    ),
    (
        "Route",
        &[
            ("name", Scalar),
            ("match", Msg("RouteMatch")),
            ("route", Msg("RouteAction")),
            ("redirect", Scalar),
            ("direct_response", Scalar),
            ("metadata", Scalar),
            ("decorator", Scalar),
            ("typed_per_filter_config", Scalar),
            ("request_headers_to_add", Msg("HeaderValueOption")),
            ("request_headers_to_remove", Scalar),
            ("response_headers_to_add", Msg("HeaderValueOption")),
            ("response_headers_to_remove", Scalar),
        ],
    ),
    (
        "HeaderValueOption",
        &[("header", Msg("HeaderValue")), ("append_action", Scalar), ("keep_empty_value", Scalar)],
    ),
    ("HeaderValue", HEADER_VALUE),
    (
        "RouteMatch",
        &[
            ("prefix", Scalar),
            ("path", Scalar),
            ("safe_regex", Scalar),
            ("path_separated_prefix", Scalar),
            ("case_sensitive", Scalar),
            ("headers", Scalar),
            ("query_parameters", Scalar),
            ("runtime_fraction", Scalar),
        ],
    ),
    (
        "RouteAction",
        &[
            ("cluster", Scalar),
            ("cluster_header", Scalar),
            ("weighted_clusters", Scalar),
            ("prefix_rewrite", Scalar),
            ("regex_rewrite", Scalar),
            ("host_rewrite_literal", Scalar),
            ("auto_host_rewrite", Scalar),
            ("timeout", Scalar),
            ("idle_timeout", Scalar),
            ("retry_policy", Scalar),
        ],
    ),
    (
        "HttpFilter",
        &[
            ("name", Scalar),
            ("typed_config", Any),
            ("config_discovery", Scalar),
            ("is_optional", Scalar),
            ("disabled", Scalar),
        ],
    ),
    // ext_authz.proto, message ExtAuthz.
    (
        "ExtAuthz",
        &[
            ("@type", Scalar),
            ("grpc_service", Scalar),
            ("http_service", Msg("HttpService")),
            ("transport_api_version", Scalar),
            ("failure_mode_allow", Scalar),
            ("failure_mode_allow_header_add", Scalar),
            ("with_request_body", Scalar),
            ("clear_route_cache", Scalar),
            ("status_on_error", Msg("HttpStatus")),
            ("metadata_context_namespaces", Scalar),
            ("typed_metadata_context_namespaces", Scalar),
            ("route_metadata_context_namespaces", Scalar),
            ("route_typed_metadata_context_namespaces", Scalar),
            ("filter_enabled", Scalar),
            ("filter_enabled_metadata", Scalar),
            ("deny_at_disable", Scalar),
            ("include_peer_certificate", Scalar),
            ("include_tls_session", Scalar),
            ("stat_prefix", Scalar),
            ("bootstrap_metadata_labels_key", Scalar),
            ("allowed_headers", Msg("ListStringMatcher")),
            ("disallowed_headers", Msg("ListStringMatcher")),
            ("charge_cluster_response_stats", Scalar),
            ("encode_raw_headers", Scalar),
            ("decoder_header_mutation_rules", Scalar),
            ("enable_dynamic_metadata_ingestion", Scalar),
            ("filter_metadata", Scalar),
        ],
    ),
    ("HttpStatus", &[("code", Scalar)]),
    (
        "HttpService",
        &[
            ("server_uri", Msg("HttpUri")),
            ("path_prefix", Scalar),
            ("authorization_request", Msg("AuthorizationRequest")),
            ("authorization_response", Msg("AuthorizationResponse")),
        ],
    ),
    ("HttpUri", &[("uri", Scalar), ("cluster", Scalar), ("timeout", Scalar)]),
    (
        "AuthorizationRequest",
        &[("allowed_headers", Msg("ListStringMatcher")), ("headers_to_add", Msg("HeaderValue"))],
    ),
    (
        "AuthorizationResponse",
        &[
            ("allowed_upstream_headers", Msg("ListStringMatcher")),
            ("allowed_upstream_headers_to_append", Msg("ListStringMatcher")),
            ("allowed_client_headers", Msg("ListStringMatcher")),
            ("allowed_client_headers_on_success", Msg("ListStringMatcher")),
            ("dynamic_metadata_from_headers", Msg("ListStringMatcher")),
        ],
    ),
    ("ListStringMatcher", LIST_STRING_MATCHER),
    ("StringMatcher", STRING_MATCHER),
    (
        "Router",
        &[
            ("@type", Scalar),
            ("dynamic_stats", Scalar),
            ("start_child_span", Scalar),
            ("upstream_log", Scalar),
            ("suppress_envoy_headers", Scalar),
            ("strict_check_headers", Scalar),
            ("respect_expected_rq_timeout", Scalar),
            ("upstream_http_filters", Scalar),
        ],
    ),
    (
        "Cluster",
        &[
            ("name", Scalar),
            ("type", Scalar),
            ("connect_timeout", Scalar),
            ("lb_policy", Scalar),
            ("load_assignment", Msg("ClusterLoadAssignment")),
            ("health_checks", Scalar),
            ("circuit_breakers", Scalar),
            ("transport_socket", Scalar),
            ("typed_extension_protocol_options", Scalar),
            ("dns_lookup_family", Scalar),
            ("per_connection_buffer_limit_bytes", Scalar),
        ],
    ),
    (
        "ClusterLoadAssignment",
        &[("cluster_name", Scalar), ("endpoints", Msg("LocalityLbEndpoints")), ("policy", Scalar)],
    ),
    (
        "LocalityLbEndpoints",
        &[
            ("locality", Scalar),
            ("lb_endpoints", Msg("LbEndpoint")),
            ("load_balancing_weight", Scalar),
            ("priority", Scalar),
        ],
    ),
    (
        "LbEndpoint",
        &[
            ("endpoint", Msg("Endpoint")),
            ("health_status", Scalar),
            ("metadata", Scalar),
            ("load_balancing_weight", Scalar),
        ],
    ),
    ("Endpoint", &[("address", Msg("Address")), ("health_check_config", Scalar), ("hostname", Scalar)]),
];

/// Fields the documentation marks deprecated.
const ENVOY_DEPRECATED: &[(&str, &str, &str)] = &[(
    "AuthorizationRequest",
    "allowed_headers",
    "deprecated in favour of ExtAuthz.allowed_headers (ext_authz.proto)",
)];

const TRAEFIK: Schema = &[
    ("Dynamic", &[("http", Msg("Http")), ("tcp", Scalar), ("udp", Scalar), ("tls", Scalar)]),
    (
        "Http",
        &[
            ("routers", Named("Router")),
            ("middlewares", Named("Middleware")),
            ("services", Named("Service")),
            ("serversTransports", Scalar),
        ],
    ),
    (
        "Router",
        &[
            ("rule", Scalar),
            ("ruleSyntax", Scalar),
            ("entryPoints", Scalar),
            ("middlewares", Scalar),
            ("service", Scalar),
            ("priority", Scalar),
            ("tls", Scalar),
            ("observability", Scalar),
        ],
    ),
    // One middleware per entry; these two are the ones the configuration uses.
    ("Middleware", &[("forwardAuth", Msg("ForwardAuth")), ("headers", Msg("Headers"))]),
    (
        "ForwardAuth",
        &[
            ("address", Scalar),
            ("tls", Scalar),
            ("trustForwardHeader", Scalar),
            ("authResponseHeaders", Scalar),
            ("authResponseHeadersRegex", Scalar),
            ("authRequestHeaders", Scalar),
            ("addAuthCookiesToResponse", Scalar),
            ("headerField", Scalar),
            ("forwardBody", Scalar),
            ("maxBodySize", Scalar),
            ("preserveLocationHeader", Scalar),
            ("preserveRequestMethod", Scalar),
        ],
    ),
    (
        "Headers",
        &[
            ("customRequestHeaders", Scalar),
            ("customResponseHeaders", Scalar),
            ("accessControlAllowCredentials", Scalar),
            ("accessControlAllowHeaders", Scalar),
            ("accessControlAllowMethods", Scalar),
            ("accessControlAllowOriginList", Scalar),
            ("accessControlExposeHeaders", Scalar),
            ("accessControlMaxAge", Scalar),
            ("addVaryHeader", Scalar),
            ("allowedHosts", Scalar),
            ("hostsProxyHeaders", Scalar),
            ("stsSeconds", Scalar),
            ("forceSTSHeader", Scalar),
            ("frameDeny", Scalar),
            ("contentTypeNosniff", Scalar),
            ("browserXssFilter", Scalar),
            ("referrerPolicy", Scalar),
        ],
    ),
    (
        "Service",
        &[
            ("loadBalancer", Msg("LoadBalancer")),
            ("weighted", Scalar),
            ("mirroring", Scalar),
            ("failover", Scalar),
        ],
    ),
    (
        "LoadBalancer",
        &[
            ("servers", Msg("Server")),
            ("passHostHeader", Scalar),
            ("healthCheck", Scalar),
            ("sticky", Scalar),
            ("responseForwarding", Scalar),
            ("serversTransport", Scalar),
        ],
    ),
    ("Server", &[("url", Scalar), ("weight", Scalar), ("preservePath", Scalar)]),
];

/// Every key of `value` (a `msg`), recursively, that the schema does not name.
fn unknown_keys(schema: Schema, value: &Value, msg: &str, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_keys(schema, item, msg, &format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(map) => {
            let msg = if msg == "Any" {
                // An Envoy `Any`: the message named by its `@type` URL.
                let Some(url) = map.get("@type").and_then(Value::as_str) else {
                    out.push(format!("{path}: typed_config without @type"));
                    return;
                };
                url.rsplit('.').next().unwrap_or(url).to_owned()
            } else {
                msg.to_owned()
            };
            let Some((_, fields)) = schema.iter().find(|(name, _)| *name == msg) else {
                out.push(format!("{path}: no documented option list for {msg}"));
                return;
            };
            for (k, v) in map {
                let k = k.as_str().unwrap_or("<not a string>");
                let here = format!("{path}.{k}");
                match fields.iter().find(|(f, _)| *f == k).map(|(_, h)| *h) {
                    None => out.push(format!("{here}: {msg} has no option {k:?}")),
                    Some(Scalar) => {}
                    Some(Msg(m)) => unknown_keys(schema, v, m, &here, out),
                    Some(Any) => unknown_keys(schema, v, "Any", &here, out),
                    Some(Named(m)) => match v {
                        Value::Mapping(named) => {
                            for (name, item) in named {
                                let name = name.as_str().unwrap_or("?");
                                unknown_keys(schema, item, m, &format!("{here}.{name}"), out);
                            }
                        }
                        _ => out.push(format!("{here}: expected a map of names")),
                    },
                }
            }
        }
        _ => {}
    }
}

fn check(schema: Schema, root: &str, file: &str) -> Value {
    let doc: Value = serde_yaml::from_str(&read_doc(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let mut unknown = Vec::new();
    unknown_keys(schema, &doc, root, "", &mut unknown);
    assert!(unknown.is_empty(), "{file}: options not in the documentation:\n{}", unknown.join("\n"));
    doc
}

/// The value at a path of keys and list indexes, e.g. `["a", "0", "b"]`.
fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, p| match p.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[*p],
    })
}

/// The `exact` / `prefix` patterns of a ListStringMatcher.
fn patterns(list: &Value) -> Vec<String> {
    list["patterns"]
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let (k, v) = p.as_mapping()?.iter().next()?;
                    Some(format!("{}:{}", k.as_str()?, v.as_str()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn envoy_configuration_uses_only_documented_options() {
    let doc = check(ENVOY, "Bootstrap", "envoy.yaml");
    // Item 4 of issue 19: no deprecated field, no field Envoy never had.
    let text = read_doc("envoy.yaml");
    assert!(
        !text.contains("method_override"),
        "envoy.yaml mentions method_override, which Envoy does not have"
    );
    let hcm = at(
        &doc,
        &["static_resources", "listeners", "0", "filter_chains", "0", "filters", "0", "typed_config"],
    );
    let authz = &hcm["http_filters"][0]["typed_config"];
    assert_eq!(
        authz["@type"].as_str(),
        Some("type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz")
    );
    for (msg, field, why) in ENVOY_DEPRECATED {
        let used = match *msg {
            "AuthorizationRequest" => !authz["http_service"]["authorization_request"][field].is_null(),
            _ => unreachable!(),
        };
        assert!(!used, "{msg}.{field} is {why}");
    }

    // Refuse when nbtoken cannot answer, and say 503 (item 3), not the default 403.
    assert_eq!(authz["failure_mode_allow"].as_bool(), Some(false));
    assert_eq!(authz["status_on_error"]["code"].as_str(), Some("ServiceUnavailable"));

    // The client's address (item 2): never the client's own X-Forwarded-For, which Envoy
    // appends to; the check names the connection's peer, replacing any client value.
    let allowed = patterns(&authz["allowed_headers"]);
    assert!(!allowed.iter().any(|p| p.to_ascii_lowercase().contains("forwarded")), "{allowed:?}");
    let added = &authz["http_service"]["authorization_request"]["headers_to_add"];
    assert_eq!(added[0]["key"].as_str(), Some("x-forwarded-for"));
    assert_eq!(added[0]["value"].as_str(), Some("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"));
    assert_eq!(hcm["use_remote_address"].as_bool(), Some(true));

    // Identity onto the request, the v1 warning to the client on success (item 1), and the
    // challenge and Retry-After with refusals.
    let response = &authz["http_service"]["authorization_response"];
    assert_eq!(patterns(&response["allowed_upstream_headers"]), ["prefix:x-nbtoken-"]);
    assert_eq!(
        patterns(&response["allowed_client_headers_on_success"]),
        ["exact:deprecation", "exact:sunset"]
    );
    let on_refusal = patterns(&response["allowed_client_headers"]);
    for h in ["exact:www-authenticate", "exact:retry-after"] {
        assert!(on_refusal.iter().any(|p| p == h), "{on_refusal:?}");
    }
    assert_eq!(authz["http_service"]["path_prefix"].as_str(), Some("/auth/forward"));
}

#[test]
fn traefik_configuration_uses_only_documented_options() {
    let doc = check(TRAEFIK, "Dynamic", "traefik.yml");
    let auth = &doc["http"]["middlewares"]["nbtoken"]["forwardAuth"];
    assert_eq!(auth["address"].as_str(), Some("http://127.0.0.1:8080/auth/forward"));
    // Client-sent X-Forwarded-* are replaced by Traefik's own.
    assert_eq!(auth["trustForwardHeader"].as_bool(), Some(false));
    let copied: Vec<&str> =
        auth["authResponseHeaders"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    for h in [
        "X-Nbtoken-User",
        "X-Nbtoken-User-Id",
        "X-Nbtoken-Token-Id",
        "X-Nbtoken-Token-Version",
        "X-Nbtoken-Write-Enabled",
        "Deprecation",
        "Sunset",
    ] {
        assert!(copied.contains(&h), "authResponseHeaders lacks {h}: {copied:?}");
    }
    let router = &doc["http"]["routers"]["app"];
    let chain: Vec<&str> =
        router["middlewares"].as_sequence().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(chain, ["nbtoken", "nbtoken-drop-token"]);
}

/// The checker itself: a key no documentation names is caught, wherever it is.
#[test]
fn unknown_options_are_caught() {
    let doc: Value = serde_yaml::from_str(
        "http:\n  middlewares:\n    m:\n      forwardAuth:\n        address: x\n        trustForwardHeaders: false\n",
    )
    .unwrap();
    let mut out = Vec::new();
    unknown_keys(TRAEFIK, &doc, "Dynamic", "", &mut out);
    assert_eq!(out, [".http.middlewares.m.forwardAuth.trustForwardHeaders: ForwardAuth has no option \"trustForwardHeaders\""]);

    let doc: Value = serde_yaml::from_str(
        "static_resources:\n  listeners:\n    - filter_chains:\n        - filters:\n            - typed_config:\n                \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n                http_filters:\n                  - typed_config:\n                      \"@type\": x.ExtAuthz\n                      http_service:\n                        authorization_request:\n                          method_override: GET\n",
    )
    .unwrap();
    let mut out = Vec::new();
    unknown_keys(ENVOY, &doc, "Bootstrap", "", &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].ends_with("AuthorizationRequest has no option \"method_override\""), "{out:?}");
}
