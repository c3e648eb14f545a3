//! The OpenAPI document at `/api/schema/`: it names exactly the routes the router serves, a
//! standard validator accepts it, and real answers of a running server match their schemas.
//!
//! The validator and JSON Schema checks use `openapi-spec-validator` and `jsonschema` from PyPI,
//! installed into a virtualenv under the target directory on first run.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::harness;

on_every_backend!(
    every_route_is_documented_and_every_documented_route_is_served,
    schema_is_public_as_in_netbox_but_a_bad_token_is_refused,
    document_is_valid_openapi_and_real_answers_match_it,
);

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::{Backend, Server};
use reqwest::Method;
use serde_json::{json, Value};

const SCHEMA: &str = "/api/schema/";

/// Methods probed on every path. HEAD is left out: axum answers it wherever GET is served.
const METHODS: [&str; 7] = ["get", "post", "put", "patch", "delete", "options", "trace"];

async fn fetch_document(s: &Server) -> Value {
    let resp = s.client.get(format!("{}{SCHEMA}", s.base())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/vnd.oai.openapi+json");
    assert!(resp.headers().contains_key("api-version"), "an /api/ answer carries API-Version");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// axum's path syntax to OpenAPI's: `{*path}` (a wildcard) is documented as `{path}`.
fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

/// A concrete request path for a documented one: ids that match nothing, a nested path for forward-auth.
fn concrete(path: &str) -> String {
    path.replace("{id}", "999999").replace("{path}", "some/original/path")
}

async fn every_route_is_documented_and_every_documented_route_is_served(b: Backend) {
    let s = Server::start(b).await;
    let doc = fetch_document(&s).await;
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, item)| {
            let methods = item.as_object().unwrap().keys().filter(|k| METHODS.contains(&k.as_str()));
            (p.clone(), methods.cloned().collect())
        })
        .collect();
    // The router's paths come from the table it is built from, not from a copy in this test.
    let routed: BTreeSet<String> = nbtoken_server::api::route_paths().into_iter().map(openapi_path).collect();
    assert!(routed.contains(SCHEMA) && routed.len() >= 15, "{routed:?}");
    let documented_paths: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(routed, documented_paths, "routed paths (left) and documented paths (right) differ");

    // Which methods each path serves is asked of the running server: anything but its 405.
    for (path, methods) in &documented {
        let mut served = BTreeSet::new();
        for m in METHODS {
            let method = Method::from_bytes(m.to_ascii_uppercase().as_bytes()).unwrap();
            let (status, _) = s.raw(method, &concrete(path), None, None, &[]).await;
            assert_ne!(status, 500, "{m} {path}");
            if status != 405 {
                served.insert(m.to_owned());
            }
        }
        assert_eq!(&served, methods, "{path}: served methods (left) and documented methods (right) differ");
    }
    // Every operation can be told apart by its id.
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for (m, op) in item.as_object().unwrap() {
            if METHODS.contains(&m.as_str()) || m == "head" {
                let id = op["operationId"].as_str().unwrap_or_else(|| panic!("no operationId: {op}"));
                assert!(ids.insert(id.to_owned()), "operationId {id} used twice");
            }
        }
    }
}

async fn schema_is_public_as_in_netbox_but_a_bad_token_is_refused(b: Backend) {
    let s = Server::start(b).await;
    let doc = fetch_document(&s).await;
    // NetBox answers `?format=json` with JSON; so does nbtoken, with the same document.
    let (status, with_format) = s.raw(Method::GET, "/api/schema/?format=json", None, None, &[]).await;
    assert_eq!((status, &with_format), (200, &doc));
    let (status, authed) = s.admin(Method::GET, SCHEMA, None).await;
    assert_eq!((status, &authed), (200, &doc));
    // As in DRF, a credential that is sent is checked even where none is needed.
    let bad = b"Bearer nbt_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let (status, body) = s.raw(Method::GET, SCHEMA, Some(bad), None, &[]).await;
    assert_eq!(status, 403, "{body}");
    // The scheme clients authenticate with is described, and the token routes require it.
    let scheme = &doc["components"]["securitySchemes"]["tokenAuth"];
    assert_eq!((scheme["type"].as_str(), scheme["in"].as_str()), (Some("apiKey"), Some("header")));
    assert_eq!(scheme["name"], "Authorization");
    assert_eq!(doc["paths"]["/api/users/tokens/"]["get"]["security"], json!([{"tokenAuth": []}]));
    assert_eq!(doc["paths"]["/healthz"]["get"].get("security"), None);
    // The secret-bearing field is described as shown only on creation.
    let token = &doc["components"]["schemas"]["Token"]["properties"]["token"];
    assert!(token["description"].as_str().unwrap().contains("only in the answer that created"), "{token}");
}

/// One real answer: the documented path and method it was sent to, its status and its body.
struct Sample {
    path: &'static str,
    method: &'static str,
    status: u16,
    body: Value,
    /// The JSON body sent, checked against the documented request body.
    request: Option<Value>,
}

async fn sample(
    s: &Server,
    path: &'static str,
    concrete: &str,
    method: Method,
    body: Option<Value>,
) -> Sample {
    let (status, got) = s.admin(method.clone(), concrete, body.clone()).await;
    let method = match method.as_str() {
        "GET" => "get",
        "POST" => "post",
        "PUT" => "put",
        "PATCH" => "patch",
        _ => "delete",
    };
    Sample { path, method, status, body: got, request: body.filter(|_| status < 400) }
}

async fn document_is_valid_openapi_and_real_answers_match_it(b: Backend) {
    let Some(python) = venv() else { return };
    let s = Server::start(b).await;
    let doc = fetch_document(&s).await;

    let mut samples = vec![
        sample(&s, "/api/", "/api/", Method::GET, None).await,
        sample(&s, "/api/status/", "/api/status/", Method::GET, None).await,
        sample(&s, "/api/authentication-check/", "/api/authentication-check/", Method::GET, None).await,
        sample(&s, "/api/users/", "/api/users/", Method::GET, None).await,
        sample(&s, "/api/users/tokens/", "/api/users/tokens/", Method::GET, None).await,
        sample(&s, "/api/users/tokens/", "/api/users/tokens/?brief=1&limit=1", Method::GET, None).await,
        sample(&s, "/api/users/tokens/", "/api/users/tokens/?version=7", Method::GET, None).await,
        sample(&s, "/api/users/users/", "/api/users/users/", Method::GET, None).await,
        sample(&s, "/api/users/users/", "/api/users/users/?brief=1", Method::GET, None).await,
        sample(&s, "/api/users/tokens/{id}/", "/api/users/tokens/999999/", Method::GET, None).await,
    ];
    let created = sample(
        &s,
        "/api/users/tokens/",
        "/api/users/tokens/",
        Method::POST,
        Some(json!({"description": "openapi", "allowed_ips": ["127.0.0.0/8"], "expires": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let created_body = created.body.clone();
    samples.push(created);
    let token_path = format!("/api/users/tokens/{id}/");
    samples.push(sample(&s, "/api/users/tokens/{id}/", &token_path, Method::GET, None).await);
    let token_body = samples.last().unwrap().body.clone();
    samples.push(
        sample(&s, "/api/users/tokens/{id}/", &token_path, Method::PATCH, Some(json!({"enabled": false})))
            .await,
    );
    samples.push(
        sample(&s, "/api/users/tokens/", "/api/users/tokens/", Method::POST, Some(json!({"version": 9})))
            .await,
    );
    let user = sample(
        &s,
        "/api/users/users/",
        "/api/users/users/",
        Method::POST,
        Some(json!({"username": "openapi", "password": "OpenAPI-password-1", "first_name": "Open"})),
    )
    .await;
    assert_eq!(user.status, 201, "{}", user.body);
    let user_path = format!("/api/users/users/{}/", user.body["id"]);
    samples.push(user);
    samples.push(sample(&s, "/api/users/users/{id}/", &user_path, Method::GET, None).await);
    let request = json!({"username": "openapi", "password": "OpenAPI-password-1", "write_enabled": false});
    let (status, provisioned) = s.provision(request.clone()).await;
    samples.push(Sample {
        path: "/api/users/tokens/provision/",
        method: "post",
        status,
        body: provisioned,
        request: Some(request),
    });
    let (status, anonymous) = s.raw(Method::GET, "/api/users/tokens/", None, None, &[]).await;
    samples.push(Sample {
        path: "/api/users/tokens/",
        method: "get",
        status,
        body: anonymous,
        request: None,
    });
    for path in ["/healthz", "/livez"] {
        let (status, body) = s.raw(Method::GET, path, None, None, &[]).await;
        samples.push(Sample { path, method: "get", status, body, request: None });
    }
    let statuses: BTreeSet<u16> = samples.iter().map(|x| x.status).collect();
    assert_eq!(statuses, BTreeSet::from([200, 201, 400, 403, 404]), "the samples cover these answers");

    // Controls: bodies that break their schema, which the checker must reject (so a pass means something).
    let mut bad_token = token_body;
    bad_token["surprise"] = json!(1);
    let mut missing_field = samples[4].body.clone(); // the token list
    missing_field.as_object_mut().unwrap().remove("count");
    let controls = [
        Sample {
            path: "/api/users/tokens/{id}/",
            method: "get",
            status: 200,
            body: bad_token,
            request: None,
        },
        Sample { path: "/api/users/tokens/", method: "get", status: 200, body: missing_field, request: None },
        Sample {
            path: "/api/status/",
            method: "get",
            status: 200,
            body: json!({"netbox-version": 4}),
            request: None,
        },
        // A request body of the wrong shape.
        Sample {
            path: "/api/users/tokens/",
            method: "post",
            status: 201,
            body: created_body,
            request: Some(json!({"enabled": "yes"})),
        },
    ];

    let dir = tempfile::tempdir().unwrap();
    let doc_file = dir.path().join("openapi.json");
    std::fs::write(&doc_file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let as_json = |list: &[Sample]| {
        Value::Array(
            list.iter()
                .map(|x| {
                    json!({"path": x.path, "method": x.method, "status": x.status, "body": x.body, "request": x.request})
                })
                .collect(),
        )
    };
    let samples_file = dir.path().join("samples.json");
    let all = json!({"good": as_json(&samples), "bad": as_json(&controls)});
    std::fs::write(&samples_file, serde_json::to_vec(&all).unwrap()).unwrap();
    let out =
        Command::new(&python).arg("-c").arg(CHECKER).arg(&doc_file).arg(&samples_file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "checker failed:\n{stdout}\n{stderr}");
    assert_eq!(
        stdout.trim(),
        format!("valid OpenAPI 3.1; {} answers match; 4 broken answers rejected", samples.len())
    );
}

/// Validates the document with `openapi-spec-validator`, then each answer against the schema the
/// document gives for its path, method and status, with `jsonschema` (Draft 2020-12, as OpenAPI 3.1).
const CHECKER: &str = r#"
import json, sys
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from jsonschema import Draft202012Validator

doc = json.load(open(sys.argv[1]))
samples = json.load(open(sys.argv[2]))
validate(doc, cls=OpenAPIV31SpecValidator)

def with_components(content):
    (media,) = [m for m in content if "json" in m]
    root = dict(content[media]["schema"])
    root["components"] = doc["components"]
    return root

def errors(s):
    op = doc["paths"][s["path"]][s["method"]]
    answer = with_components(op["responses"][str(s["status"])]["content"])
    found = [e.message for e in Draft202012Validator(answer).iter_errors(s["body"])]
    if s["request"] is not None:
        request = with_components(op["requestBody"]["content"])
        found += [e.message for e in Draft202012Validator(request).iter_errors(s["request"])]
    return found

failed = []
for s in samples["good"]:
    e = errors(s)
    if e:
        failed.append((s["method"], s["path"], s["status"], e))
for s in samples["bad"]:
    if not errors(s):
        failed.append(("control passed", s["path"], s["status"], s["body"]))
if failed:
    for f in failed:
        print(f, file=sys.stderr)
    sys.exit(1)
print(f"valid OpenAPI 3.1; {len(samples['good'])} answers match; {len(samples['bad'])} broken answers rejected")
"#;

/// A virtualenv with `openapi-spec-validator` and `jsonschema`, made once under the target directory;
/// `None` (skipped) when Python cannot make one, which fails under `CI`.
fn venv() -> Option<PathBuf> {
    let can_make = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !can_make {
        nbtoken_testkit::skip("python3 with venv is not installed", "the OpenAPI validation");
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openapi-venv");
    let python = dir.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import openapi_spec_validator, jsonschema"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
    if !ready {
        let st = Command::new("python3").arg("-m").arg("venv").arg(&dir).status().expect("python3 is needed");
        assert!(st.success(), "python3 -m venv failed (install python3-venv)");
        let st = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "openapi-spec-validator==0.7.2",
                "jsonschema==4.23.0",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "pip install openapi-spec-validator jsonschema failed");
    }
    Some(python)
}
