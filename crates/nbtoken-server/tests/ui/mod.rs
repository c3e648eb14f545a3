//! The web UI under `/ui/`: plain HTTP tests of its security (`security`), and the flows
//! driven in a real headless Chromium through chromedriver (`browser`).

mod browser;
mod security;

use reqwest::header::{HeaderMap, COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::harness::Server;

/// A client that does not follow redirects, so tests see each `303` and its cookies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

/// The value of cookie `name` set by a response.
pub fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    })
}

/// The first `name="csrf" value="…"` of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// A form body.
pub fn form(fields: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish()
}

/// The sign-in page that `get` fetches: the CSRF cookie it sets and the token of its form.
pub async fn signin_form(get: reqwest::RequestBuilder) -> (String, String) {
    let page = get.send().await.unwrap();
    let pre = set_cookie(page.headers(), "nbtoken_signin").expect("the sign-in CSRF cookie");
    (pre, csrf_of(&page.text().await.unwrap()))
}

/// The sign-in form sent by `post`, with the CSRF cookie `pre` of its page (`None`: a forged
/// post from elsewhere) and the form's `token`.
pub async fn post_signin(
    post: reqwest::RequestBuilder,
    pre: Option<&str>,
    token: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let post = match pre {
        Some(pre) => post.header(COOKIE, format!("nbtoken_signin={pre}")),
        None => post,
    };
    post.header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", token), ("username", username), ("password", password)]))
        .send()
        .await
        .unwrap()
}

/// A signed-in browser, as plain HTTP: its session cookie and the session's CSRF token.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

impl Browser {
    /// Signs in as `username` through the form, as a browser does.
    pub async fn sign_in(s: &Server, username: &str, password: &str) -> Browser {
        let (client, base) = (client(), s.base());
        let (pre, token) = signin_form(client.get(format!("{base}/ui/signin"))).await;
        let resp =
            post_signin(client.post(format!("{base}/ui/signin")), Some(&pre), &token, username, password)
                .await;
        assert_eq!(resp.status(), 303, "sign-in of {username} refused");
        let sid = set_cookie(resp.headers(), "nbtoken_session").expect("a session cookie");
        let cookie = format!("nbtoken_session={sid}");
        let tokens = client.get(format!("{base}/ui/tokens/")).header(COOKIE, &cookie).send().await.unwrap();
        assert_eq!(tokens.status(), 200);
        let csrf = csrf_of(&tokens.text().await.unwrap());
        Browser { client, base, cookie, csrf }
    }

    /// `GET path` with the session cookie.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}{path}", self.base)).header(COOKIE, &self.cookie).send().await.unwrap()
    }

    /// `POST path` of a form with the session cookie (add `csrf` yourself, or leave it out).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .header(COOKIE, &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .unwrap()
    }
}
