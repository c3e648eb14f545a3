//! The server's base URL, however the user wrote it, and the API paths under it.

use reqwest::Url;

use crate::ClientError;

/// Where the API lives: `http://host:port/`, or with a path prefix
/// (`https://host/netbox/`) when NetBox is served below the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseUrl(Url);

impl BaseUrl {
    /// Accepts `http://host:port`, with or without a trailing slash, with or
    /// without the `/api` suffix. Errors do not echo the input: a token passed
    /// in the wrong argument must not end up in a message.
    pub(crate) fn parse(raw: &str) -> Result<BaseUrl, ClientError> {
        let invalid = |why: &str| ClientError::InvalidUrl(why.to_owned());
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(invalid("it is empty"));
        }
        let mut url = Url::parse(raw)
            .map_err(|e| ClientError::InvalidUrl(format!("{e} (expected http://host:port)")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the URL are not supported; the client authenticates with its token",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("it must not carry a query or a fragment"));
        }
        let path = url.path().trim_end_matches('/');
        let prefix = path.strip_suffix("/api").unwrap_or(path).trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}/"));
        Ok(BaseUrl(url))
    }

    /// The URL of an API path such as `users/tokens/` (below `/api/`).
    pub(crate) fn api(&self, path: &str) -> Result<Url, ClientError> {
        self.0
            .join(&format!("api/{}", path.trim_start_matches('/')))
            .map_err(|e| ClientError::InvalidUrl(format!("cannot build the URL of {path}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        match BaseUrl::parse(input) {
            Ok(b) => assert_eq!(b.api("users/tokens/").unwrap().as_str(), expected, "{input}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(expected), "{input}: {msg}");
                assert!(!msg.contains("secret"), "{input} echoed: {msg}");
            }
        }
    }

    #[test]
    fn base_urls() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/api",
            "http://127.0.0.1:8080/api/",
            " http://127.0.0.1:8080//api// ",
        ] {
            check(ok, "http://127.0.0.1:8080/api/users/tokens/");
        }
        check("https://nb.example/netbox", "https://nb.example/netbox/api/users/tokens/");
        check("https://nb.example/netbox/api/", "https://nb.example/netbox/api/users/tokens/");
        check("HTTPS://NB.example", "https://nb.example/api/users/tokens/");
    }

    #[test]
    fn bad_base_urls() {
        check("", "empty");
        check("127.0.0.1:8080", "expected http://host:port");
        check("localhost:8080", "scheme must be http or https");
        check("nbt_secretsecret.secret", "expected http://host:port");
        check("ftp://nb.example", "scheme");
        check("http://user:secret@nb.example", "credentials");
        check("http://nb.example/?x=secret", "query");
        check("http://nb.example/#secret", "fragment");
    }
}
