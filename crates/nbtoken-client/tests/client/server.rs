//! The client against a real nbtoken server.

use nbtoken_client::{
    Client, ClientError, NewToken, ProvisionOptions, Scheme, SecretString, TokenPatch, TokenQuery,
    TokenVersion, UserQuery,
};

use crate::harness::{Server, ADMIN_PASSWORD, V1_PLAIN};

#[tokio::test]
async fn whoami_with_v2_and_v1_tokens() {
    let s = Server::start().await;
    let v2 = s.admin();
    assert_eq!(v2.token_version(), Some(TokenVersion::V2));
    assert_eq!(v2.whoami().await.unwrap().username, "admin");
    let v1 = s.client(V1_PLAIN);
    assert_eq!(v1.token_version(), Some(TokenVersion::V1));
    let me = v1.whoami().await.unwrap();
    assert_eq!((me.username.as_str(), me.is_superuser), ("admin", Some(true)));
}

#[tokio::test]
async fn base_url_forms() {
    let s = Server::start().await;
    for base in
        [s.base(), format!("{}/", s.base()), format!("{}/api", s.base()), format!("{}/api/", s.base())]
    {
        let c = Client::builder(&base, s.admin_v2.as_str()).build().unwrap();
        assert_eq!(c.whoami().await.unwrap().username, "admin", "{base}");
    }
}

#[tokio::test]
async fn status_and_api_version() {
    let s = Server::start().await;
    let c = s.admin();
    assert_eq!(c.api_version().await.unwrap(), "4.7");
    let st = c.status().await.unwrap();
    assert_eq!(st.netbox_version.as_deref(), Some("4.7.3"));
    assert!(st.nbtoken_version.is_some());
    assert!(st.other.contains_key("installed_apps"), "{:?}", st.other);
}

#[tokio::test]
async fn pagination_follows_next_links() {
    let s = Server::start().await;
    let c = s.admin();
    for i in 0..7 {
        c.create_token(&NewToken { description: Some(format!("t{i}")), ..Default::default() }).await.unwrap();
    }
    let q = TokenQuery { limit: Some(3), ..Default::default() };
    let all = c.list_tokens(&q).await.unwrap();
    let mut ids: Vec<i64> = all.iter().map(|t| t.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 9, "2 tokens from the harness + 7: {ids:?}");

    let mut pages = c.token_pages(&q);
    let mut sizes = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        assert_eq!(page.count, Some(9));
        sizes.push(page.results.len());
    }
    assert_eq!(sizes, [3, 3, 3]);
    assert!(pages.next_page().await.unwrap().is_none(), "a finished pager stays finished");

    let v1 =
        c.list_tokens(&TokenQuery { version: Some(TokenVersion::V1), ..Default::default() }).await.unwrap();
    assert_eq!(v1.len(), 1);
    assert_eq!((v1[0].version, v1[0].key.as_deref(), v1[0].pepper_id), (TokenVersion::V1, None, None));
    let key = all.iter().find_map(|t| t.key.clone()).unwrap();
    let by_key = c.list_tokens(&TokenQuery { key: Some(key.clone()), ..Default::default() }).await.unwrap();
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].key.as_deref(), Some(key.as_str()));
}

#[tokio::test]
async fn create_get_patch_delete() {
    let s = Server::start().await;
    let admin = s.admin();
    let created = admin
        .create_token(&NewToken {
            description: Some("ci runner".into()),
            write_enabled: Some(false),
            allowed_ips: Some(vec!["127.0.0.0/8".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    let t = &created.token;
    assert_eq!(t.version, TokenVersion::V2);
    assert_eq!(t.user.username, "admin");
    assert_eq!(t.allowed_ips.as_deref(), Some(&["127.0.0.0/8".to_owned()][..]));
    assert_eq!(t.pepper_id, Some(1));
    let full = created.full_value();
    assert_eq!(full.expose(), format!("nbt_{}.{}", t.key.as_deref().unwrap(), created.secret.expose()));

    let own = Client::builder(&s.base(), full.clone()).build().unwrap();
    assert_eq!(own.whoami().await.unwrap().username, "admin");

    let got = admin.get_token(t.id).await.unwrap();
    assert_eq!((got.description.as_str(), got.write_enabled), ("ci runner", false));

    // A read-only token may not write; the error carries the server's detail.
    let e = own.update_token(t.id, &TokenPatch { description: Some("x".into()), ..Default::default() }).await;
    assert_eq!(e.unwrap_err().detail(), Some("You do not have permission to perform this action."));

    let patched = admin
        .update_token(
            t.id,
            &TokenPatch { description: Some("renamed".into()), enabled: Some(false), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!((patched.description.as_str(), patched.enabled), ("renamed", false));
    let e = own.whoami().await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.detail(), Some("Token disabled"));
    assert!(!e.to_string().contains(created.secret.expose()), "{e}");

    admin.delete_token(t.id).await.unwrap();
    let e = admin.get_token(t.id).await.unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert_eq!(e.detail(), Some("No Token matches the given query."));
    assert_eq!(admin.delete_token(t.id).await.unwrap_err().status(), Some(404));
}

#[tokio::test]
async fn created_v1_token_is_sent_as_token() {
    let s = Server::start().await;
    let created = s
        .admin()
        .create_token(&NewToken { version: Some(TokenVersion::V1), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(created.token.version, TokenVersion::V1);
    let full = created.full_value();
    assert_eq!(full.len(), 40);
    let c = Client::builder(&s.base(), full).build().unwrap();
    assert_eq!(c.token_version(), Some(TokenVersion::V1));
    assert_eq!(c.whoami().await.unwrap().username, "admin");
    let auth = nbtoken_client::ApiToken::parse(created.full_value()).unwrap();
    assert_eq!(auth.scheme(), Scheme::Token);
}

#[tokio::test]
async fn field_errors_become_the_detail() {
    let s = Server::start().await;
    let e = s
        .admin()
        .create_token(&NewToken { description: Some("d".repeat(201)), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    assert!(e.detail().unwrap().starts_with("description: "), "{e}");
}

#[tokio::test]
async fn provision_with_good_and_bad_password() {
    let s = Server::start().await;
    let opts = ProvisionOptions { description: Some("from password".into()), ..Default::default() };
    let created =
        Client::provision(&s.base(), "admin", &SecretString::from(ADMIN_PASSWORD), &opts).await.unwrap();
    assert_eq!(created.token.version, TokenVersion::V2);
    assert_eq!(created.token.description, "from password");
    let full = created.full_value();
    assert!(full.expose().starts_with("nbt_") && full.expose().contains('.'));
    assert_eq!(Client::builder(&s.base(), full).build().unwrap().whoami().await.unwrap().username, "admin");

    let e = Client::provision(&s.base(), "admin", &SecretString::from("wrong-password"), &opts)
        .await
        .unwrap_err();
    assert_eq!(
        e,
        ClientError::Http { status: 403, detail: Some("Invalid username/password".into()), hint: None }
    );
    assert!(!e.to_string().contains("wrong-password"));
    let e =
        Client::provision(&s.base(), "nobody", &SecretString::from(ADMIN_PASSWORD), &opts).await.unwrap_err();
    assert_eq!(e.detail(), Some("Invalid username/password"));
}

#[tokio::test]
async fn wrong_secret_error_carries_detail_not_token() {
    let s = Server::start().await;
    let (key, _) = s.admin_v2.split_once('.').unwrap();
    let wrong = format!("{key}.{}", "Z".repeat(40));
    let e = s.client(&wrong).whoami().await.unwrap_err();
    assert_eq!(e.status(), Some(403));
    assert_eq!(e.detail(), Some("Invalid v2 token"));
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&wrong) && !shown.contains(&"Z".repeat(40)), "{shown}");
}

#[tokio::test]
async fn list_users() {
    let s = Server::start().await;
    let users = s.admin().list_users(&UserQuery::default()).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].username, "admin");
    let nobody = UserQuery { username: Some("nobody".into()), ..Default::default() };
    assert!(s.admin().list_users(&nobody).await.unwrap().is_empty());
    assert_eq!(s.admin().get_user(users[0].id).await.unwrap(), users[0]);
}
