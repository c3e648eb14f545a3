//! The clients against a real NetBox 4.7.3: pynetbox (unchanged, from PyPI) and the
//! `nbtoken-client` crate. Each lists tokens over several pages, creates, updates and
//! deletes a token, checks who it is, uses v1 and v2 tokens, and sees a read-only token
//! refused on write. Each test makes its own users and tokens in the shared NetBox.

#![allow(clippy::unwrap_used, missing_docs)]

use crate::common;

use std::process::Command;

use common::netbox::{netbox, USER_PASSWORD};
use nbtoken_client::{Client, ClientError, NewToken, ProvisionOptions, TokenPatch, TokenQuery};
use nbtoken_core::{SecretString, TokenVersion};
use serde_json::json;

#[test]
fn pynetbox_works_against_netbox() {
    let Some(nb) = netbox() else { return };
    let python = common::pynetbox_venv("pynetbox-netbox-venv");
    let root = nb.create_user("clients-py-root", true);
    let user = nb.create_user("clients-py-user", false);
    let admin = nb.create_token(root, 2, json!({"description": "py admin"}));
    let v1 = nb.create_token(root, 1, json!({"description": "py v1"}));
    let ro = nb.create_token(root, 2, json!({"description": "py ro", "write_enabled": false}));
    let out = Command::new(&python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/netbox_clients_pynetbox.py"))
        .env("NB_URL", &nb.url)
        .env("NB_ADMIN", &admin.value)
        .env("NB_V1", &v1.value)
        .env("NB_RO", &ro.value)
        .env("NB_USER_ID", user.to_string())
        .env("NB_TAG", "clients-py")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "pynetbox checks failed against NetBox:\n{stdout}\n{stderr}");
    assert!(stdout.contains("pynetbox against NetBox: all checks passed"));
}

fn client(url: &str, token: &str) -> Client {
    Client::builder(url, SecretString::from(token)).build().unwrap()
}

#[tokio::test]
async fn nbtoken_client_works_against_netbox() {
    let Some(nb) = netbox() else { return };
    let root = nb.create_user("clients-rs-root", true);
    let user = nb.create_user("clients-rs-user", false);
    let admin_v2 = nb.create_token(root, 2, json!({"description": "rs admin"}));
    let admin_v1 = nb.create_token(root, 1, json!({"description": "rs v1"}));
    let ro = nb.create_token(root, 2, json!({"description": "rs ro", "write_enabled": false}));

    // Who am I, with either version; the header follows the token.
    let v2 = client(&nb.url, &admin_v2.value);
    let v1 = client(&nb.url, &admin_v1.value);
    assert_eq!(v2.token_version(), Some(TokenVersion::V2));
    assert_eq!(v1.token_version(), Some(TokenVersion::V1));
    for c in [&v2, &v1] {
        let me = c.whoami().await.unwrap();
        assert_eq!((me.id, me.username.as_str()), (root, "clients-rs-root"));
    }
    assert_eq!(v2.api_version().await.unwrap(), "4.7");

    // Five tokens for the user, listed two a page: three pages, every token once.
    let mut made = Vec::new();
    for i in 0..5 {
        let new =
            NewToken { user: Some(user), description: Some(format!("clients-rs-{i}")), ..Default::default() };
        made.push(v2.create_token(&new).await.unwrap().token.id);
    }
    let query = TokenQuery { user_id: Some(user), limit: Some(2), ..Default::default() };
    let mut pager = v2.token_pages(&query);
    let (mut pages, mut seen) = (0, Vec::new());
    while let Some(page) = pager.next_page().await.unwrap() {
        pages += 1;
        assert_eq!(page.count, Some(5));
        seen.extend(page.results.iter().map(|t| t.id));
    }
    assert_eq!(pages, 3);
    seen.sort_unstable();
    made.sort_unstable();
    assert_eq!(seen, made);
    let by_v1 = v1.list_tokens(&query).await.unwrap();
    assert_eq!(by_v1.len(), 5, "a v1 token lists the same tokens");

    // Create, use, update, delete.
    let new = NewToken {
        user: Some(user),
        description: Some("clients-rs-crud".into()),
        allowed_ips: Some(vec!["127.0.0.0/8".into()]),
        ..Default::default()
    };
    let created = v2.create_token(&new).await.unwrap();
    assert_eq!(created.token.version, TokenVersion::V2);
    let as_user = client(&nb.url, created.full_value().expose());
    assert_eq!(as_user.whoami().await.unwrap().id, user);
    let patch = TokenPatch { description: Some("clients-rs-changed".into()), ..Default::default() };
    let updated = v2.update_token(created.token.id, &patch).await.unwrap();
    assert_eq!(updated.description, "clients-rs-changed");
    assert_eq!(v2.get_token(created.token.id).await.unwrap().description, "clients-rs-changed");
    v2.delete_token(created.token.id).await.unwrap();
    let gone = v2.get_token(created.token.id).await.unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
    let refused = as_user.whoami().await.unwrap_err();
    assert_eq!((refused.status(), refused.detail()), (Some(403), Some("Invalid v2 token")));

    // A read-only token reads, and is refused on write with NetBox's words.
    let read_only = client(&nb.url, &ro.value);
    assert_eq!(read_only.list_tokens(&query).await.unwrap().len(), 5);
    let err = read_only.create_token(&NewToken { user: Some(user), ..Default::default() }).await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err}");
    assert_eq!(err.detail(), Some("You do not have permission to perform this action."));
    assert!(matches!(err, ClientError::Http { .. }));

    // Provision from a password, then use the token.
    let provisioned = Client::provision(
        &nb.url,
        "clients-rs-user",
        &SecretString::from(USER_PASSWORD),
        &ProvisionOptions { description: Some("clients-rs-provisioned".into()), ..Default::default() },
    )
    .await
    .unwrap();
    let as_provisioned = client(&nb.url, provisioned.full_value().expose());
    assert_eq!(as_provisioned.whoami().await.unwrap().username, "clients-rs-user");
}
