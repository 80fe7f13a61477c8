//! The smaller holes of issue 16 (item 8), each against the running binary: a `javascript:`
//! or `data:` link is never a tracked redirect; the session cookie keeps `Secure` behind a
//! TLS-terminating proxy and never decides it from `Host`; exported CSV cells cannot start a
//! formula, full-width or after a TAB; `/metrics` can be closed with a token or moved to an
//! address of its own.

use std::net::TcpListener;

use mailtrail_testkit::smtp_sink::Sink;
use serde_json::json;

use crate::common::{self, KillOnDrop};

/// The service on a fresh database with one account, mailing `ok.test` to `sink`; `config`
/// is the text of a configuration file, if any.
struct Service {
    base: String,
    key: String,
    _service: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Service {
    fn start(sink: Option<&Sink>, config: Option<&str>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").to_str().unwrap().to_owned();
        let routes = sink.map(|sink| format!("ok.test={}", sink.address()));
        let mut env = vec![("MAILTRAIL_DATA_DIR", data.as_str())];
        if let Some(routes) = &routes {
            env.push(("MAILTRAIL_OUTBOUND_ROUTES", routes));
        }
        let (_, key) = common::create_account(&env, "Shop");
        let file = dir.path().join("mailtrail.toml");
        let file = file.to_str().unwrap();
        let args: &[&str] = match config {
            Some(text) => {
                std::fs::write(file, text).unwrap();
                &["--config", file]
            }
            None => &[],
        };
        let (child, base, _) = common::serve_with_args(&env, args);
        Service {
            base,
            key,
            _service: KillOnDrop(child),
            _dir: dir,
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Every URL in `html` that starts with `prefix`, up to its closing quote.
fn urls(html: &str, prefix: &str) -> Vec<String> {
    html.match_indices(prefix)
        .map(|(at, _)| {
            let end = html[at..].find('"').unwrap();
            html[at..at + end].to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn script_and_data_links_are_never_tracked_redirects() {
    let sink = Sink::start(&[]);
    let service = Service::start(Some(&sink), None);
    let (base, key) = (&service.base, &service.key);
    let settings = json!({"click_tracking": true, "tracking_base_url": base});
    let (status, answer) =
        common::call(reqwest::Method::PATCH, base, key, "/v1/settings", &settings).await;
    assert_eq!(status, 200, "{answer}");

    let html = "<html><body>\
        <a href=\"javascript:alert(document.cookie)\">one</a>\
        <a href=\" JavaScript:alert(2)\">two</a>\
        <a href=\"&#106;avascript:alert(3)\">three</a>\
        <a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCg0KTwvc2NyaXB0Pg==\">four</a>\
        <a href=\"https://shop.example/offer\">the offer</a>\
        </body></html>";
    let email = json!({"to": "ana@ok.test", "from": "sales@shop.test", "subject": "Offer",
                       "html": html, "text": "See the offer"});
    let id = common::send_email(base, key, &email).await;
    let raw = common::received(&sink, &id).await;
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let sent = message.body_html(0).unwrap().into_owned();
    let tracked = urls(&sent, &format!("{base}/c/"));
    assert_eq!(tracked.len(), 1, "only the https link is tracked: {sent}");
    for url in tracked {
        let answer = client().get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 302);
        assert_eq!(answer.headers()["location"], "https://shop.example/offer");
    }
}

/// The `Set-Cookie` of `GET /login` with these request headers.
async fn login_cookie(base: &str, headers: &[(&str, &str)]) -> String {
    let mut request = client().get(format!("{base}/login"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), 200);
    answer.headers()["set-cookie"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn cookies_are_secure_behind_a_tls_proxy_whatever_the_host() {
    let plain = Service::start(None, None);
    let base = &plain.base;
    // The proxy on this machine says the browser used https.
    let behind = login_cookie(base, &[("x-forwarded-proto", "https")]).await;
    assert!(behind.contains("; Secure"), "{behind}");
    // Plain http, and a Host that claims otherwise, decide nothing.
    let host = login_cookie(base, &[("host", "mailtrail.example.com")]).await;
    assert!(!host.contains("Secure"), "{host}");

    let public = Service::start(
        None,
        Some("[outbound]\ntracking_base_url = \"https://track.example.com\"\n"),
    );
    let cookie = login_cookie(&public.base, &[("host", "localhost")]).await;
    assert!(cookie.contains("; Secure"), "an https public URL: {cookie}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exported_cells_cannot_start_a_formula() {
    let service = Service::start(None, None);
    let (base, key) = (&service.base, &service.key);
    let subjects = [
        "\u{ff1d}HYPERLINK(A1)",
        "\u{ff0b}1+1",
        "\u{ff20}SUM(A1)",
        "\u{ff0d}2+3",
    ];
    for subject in subjects {
        let email = json!({"to": "ana@ok.test", "from": "sales@shop.test",
                           "subject": subject, "text": "Hello"});
        common::send_email(base, key, &email).await;
    }
    let csv = client()
        .get(format!("{base}/v1/reports/emails"))
        .bearer_auth(key)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for subject in subjects {
        assert!(csv.contains(&format!("'{subject}")), "{subject} in {csv}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_token_or_their_own_address() {
    let closed = Service::start(None, Some("metrics_token = \"m3trics-t0ken\"\n"));
    let metrics = format!("{}/metrics", closed.base);
    let answer = client().get(&metrics).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let wrong = client()
        .get(&metrics)
        .bearer_auth("m3trics-t0kem")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let answer = client()
        .get(&metrics)
        .bearer_auth("m3trics-t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer
            .text()
            .await
            .unwrap()
            .contains("mailtrail_queue_depth")
    );

    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let apart = Service::start(None, Some(&format!("metrics_listen = \"{free}\"\n")));
    let answer = client()
        .get(format!("{}/metrics", apart.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "not on the public address");
    let answer = client()
        .get(format!("http://{free}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}
