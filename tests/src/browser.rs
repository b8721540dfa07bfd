//! A minimal browser for end-to-end tests: keeps cookies by name, never follows redirects (tests look at each
//! `Location`), and lets a test copy, drop or replay cookies by hand.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Client, Response, StatusCode};

/// One browser profile.
#[derive(Debug, Clone)]
pub struct Browser {
    client: Client,
    base: String,
    /// Cookie name → value.
    pub cookies: BTreeMap<String, String>,
    /// Sent as `User-Agent`.
    pub user_agent: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Page {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body text.
    pub body: String,
}

impl Page {
    /// The `Location` header.
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// Every `Set-Cookie` line.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
    /// The value of the first hidden `csrf_token` input.
    pub fn csrf_token(&self) -> Option<String> {
        hidden_value(&self.body, "csrf_token")
    }
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The personal access token a token page shows once (`<code class="token">vst_…</code>`).
pub fn shown_token(html: &str) -> Option<String> {
    let start = html.find("<code class=\"token\">")? + "<code class=\"token\">".len();
    let end = html[start..].find('<')?;
    Some(html[start..start + end].to_owned())
}

/// The `value` of `<input ... name="NAME" value="...">`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl Browser {
    /// A browser talking to `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("http client");
        Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            cookies: BTreeMap::new(),
            user_agent: "e2e-browser".into(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, res: Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        for line in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let pair = line.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || line.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        let body = res.text().await.unwrap_or_default();
        Page { status, headers, body }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        }
    }

    /// GET, with `Accept: text/html` like a browser.
    pub async fn get(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(self.url(path))
            .header(COOKIE, self.cookie_header())
            .header("user-agent", &self.user_agent)
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.read(res).await
    }

    /// GET asking for JSON.
    pub async fn get_json(&mut self, path: &str) -> Page {
        let res = self
            .client
            .get(self.url(path))
            .header(COOKIE, self.cookie_header())
            .header("user-agent", &self.user_agent)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        self.read(res).await
    }

    /// POST a form.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.try_post(path, fields)
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// POST a form; `Err` when no answer came (the connection was closed or refused).
    pub async fn try_post(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<Page, reqwest::Error> {
        let res = self
            .client
            .post(self.url(path))
            .header(COOKIE, self.cookie_header())
            .header("user-agent", &self.user_agent)
            .form(fields)
            .send()
            .await?;
        Ok(self.read(res).await)
    }

    /// POST a form with extra request headers (a forged `Host`, say).
    pub async fn post_with(&mut self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let mut req = self
            .client
            .post(self.url(path))
            .header(COOKIE, self.cookie_header())
            .header("user-agent", &self.user_agent);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        self.read(res).await
    }

    /// Creates a personal access token named `name` with `scopes`, valid 7 days, from the account page (the
    /// browser must be freshly signed in); returns the token, which the answer shows once.
    pub async fn create_token(&mut self, name: &str, scopes: &str) -> String {
        let csrf = self
            .get("/account")
            .await
            .csrf_token()
            .expect("csrf token on the account page");
        let fields = [
            ("csrf_token", csrf.as_str()),
            ("name", name),
            ("expires_in_days", "7"),
            ("scopes", scopes),
        ];
        let res = self.post("/account/tokens", &fields).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        crate::totp::code_elements(&res.body)
            .into_iter()
            .next()
            .expect("the token shown once")
    }

    /// Sets up an authenticator app from the account page (the browser must be freshly signed in), confirming it
    /// with the code of now; returns the base32 key the page showed and the recovery codes shown once after.
    pub async fn enrol_totp(&mut self) -> (String, Vec<String>) {
        let csrf = self
            .get("/account")
            .await
            .csrf_token()
            .expect("csrf token on the account page");
        let page = self.post("/account/totp", &[("csrf_token", csrf.as_str())]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let key = crate::totp::code_elements(&page.body)
            .into_iter()
            .next()
            .expect("the key on the enrolment page");
        let csrf = page.csrf_token().expect("csrf token on the enrolment page");
        let code = crate::totp::code(&key, crate::totp::now_secs());
        let done = self
            .post(
                "/account/totp/confirm",
                &[("csrf_token", csrf.as_str()), ("code", &code)],
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        (key, crate::totp::code_elements(&done.body))
    }

    /// Loads `/login` and signs in through a password source. Returns the final response (303 on success).
    pub async fn sign_in(&mut self, source: &str, username: &str, password: &str, next: &str) -> Page {
        self.sign_in_form(source, username, password, next, &[]).await
    }

    /// As [`Browser::sign_in`], with "remember me" ticked: the response sets the remember-me cookie.
    pub async fn sign_in_remembered(&mut self, source: &str, username: &str, password: &str) -> Page {
        self.sign_in_form(source, username, password, "", &[("remember_me", "on")])
            .await
    }

    async fn sign_in_form(
        &mut self,
        source: &str,
        username: &str,
        password: &str,
        next: &str,
        extra: &[(&str, &str)],
    ) -> Page {
        let login = self.get(&format!("/login?next={}", urlencode(next))).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let token = login.csrf_token().expect("csrf token on the login page");
        let mut fields = vec![
            ("csrf_token", token.as_str()),
            ("username", username),
            ("password", password),
            ("next", next),
        ];
        fields.extend_from_slice(extra);
        self.post(&format!("/login/{source}"), &fields).await
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
