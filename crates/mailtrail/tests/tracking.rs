//! Tracking over real HTTP: the service sends an HTML email through smtp-sink with tracking
//! on; the test reads the pixel, a tracked link and the unsubscribe link out of the message as
//! received, and fetches them as a mail client and a person would.

mod common;

use std::time::Duration;

use common::{KillOnDrop, serve};
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::{Value, json};

/// The service with an account, mailing `ok.test` to a sink that keeps every message.
struct Tracked {
    sink: Sink,
    _dir: tempfile::TempDir,
    data: String,
    key: String,
    service: KillOnDrop,
    base: String,
}

impl Tracked {
    fn start() -> Self {
        let sink = Sink::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").to_str().unwrap().to_owned();
        let env = environment(&sink, &data);
        let env = borrowed(&env);
        let (_, key) = common::create_account(&env, "Shop");
        let (child, base) = serve(&env);
        Tracked {
            sink,
            _dir: dir,
            data,
            key,
            service: KillOnDrop(child),
            base,
        }
    }

    /// Starts the service again on the same data (after `service` has stopped).
    fn serve_again(&self) -> (KillOnDrop, String) {
        let (child, base) = serve(&borrowed(&environment(&self.sink, &self.data)));
        (KillOnDrop(child), base)
    }
}

fn environment(sink: &Sink, data: &str) -> [(&'static str, String); 2] {
    [
        ("MAILTRAIL_DATA_DIR", data.to_owned()),
        (
            "MAILTRAIL_OUTBOUND_ROUTES",
            format!("ok.test={}", sink.address()),
        ),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The first URL in `html` that starts with `prefix`.
/// The email's stage once it is `expected`, or the last one seen after a few seconds: opens
/// and clicks are written in batches, so it is polled (briefly).
async fn wait_for_stage(base: &str, key: &str, id: &str, expected: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let email = common::get_json(base, key, &format!("/v1/emails/{id}")).await;
        last = email["stage"].as_str().unwrap().to_owned();
        if last == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

fn url_after(html: &str, prefix: &str) -> String {
    let start = html
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {html}"));
    let end = html[start..].find('"').unwrap();
    html[start..start + end].to_owned()
}

/// A client that shows redirects instead of following them.
fn without_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn opens_clicks_and_unsubscribes_change_the_stage() {
    let tracked = Tracked::start();
    let (sink, key, base) = (&tracked.sink, tracked.key.as_str(), tracked.base.clone());
    let client = without_redirects();

    let settings =
        json!({"open_tracking": true, "click_tracking": true, "tracking_base_url": base});
    let (status, answer) = common::call(
        reqwest::Method::PATCH,
        &base,
        key,
        "/v1/settings",
        &settings,
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    let target = "https://shop.example/offer?a=1&b=2";
    let email = json!({"to": "ana@ok.test", "from": "sales@shop.test", "subject": "Offer",
                       "html": "<html><body><p>See <a href=\"https://shop.example/offer?a=1&amp;b=2\">the offer</a></p></body></html>",
                       "text": "See https://shop.example/offer"});
    let id = common::send_email(&base, key, &email).await;
    let raw = common::received(sink, &id).await;
    let message = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    let html = message.body_html(0).unwrap().into_owned();
    assert!(!html.contains(target), "the link is rewritten: {html}");
    let list_unsubscribe = message.header_raw("List-Unsubscribe").unwrap();
    assert!(
        list_unsubscribe.contains(&format!("{base}/u/")),
        "{list_unsubscribe}"
    );

    let person = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
    // Wait past the machine threshold after delivery, as a person opening mail later would.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let pixel = client
        .get(url_after(&html, &format!("{base}/o/")))
        .header("user-agent", person)
        .send()
        .await
        .unwrap();
    assert_eq!(pixel.status(), 200);
    assert_eq!(pixel.bytes().await.unwrap().len(), 43);
    assert_eq!(wait_for_stage(&base, key, &id, "opened").await, "opened");

    // Through a reverse proxy on the same machine: the address it forwards counts.
    let click = client
        .get(url_after(&html, &format!("{base}/c/")))
        .header("user-agent", person)
        .header("x-forwarded-for", "198.51.100.4, 203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(click.status(), 302);
    assert_eq!(click.headers()["location"], target);
    assert_eq!(wait_for_stage(&base, key, &id, "clicked").await, "clicked");
    // Each hit keeps where it came from and the agent that made it.
    let email = common::get_json(&base, key, &format!("/v1/emails/{id}")).await;
    let hits: Vec<(&str, &str, &str)> = email["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "opened" || e["kind"] == "clicked")
        .map(|e| {
            (
                e["kind"].as_str().unwrap(),
                e["ip"].as_str().unwrap_or_default(),
                e["user_agent"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        hits,
        [
            ("opened", "127.0.0.1", person),
            ("clicked", "203.0.113.9", person)
        ]
    );

    let unsubscribe = url_after(&html, &format!("{base}/u/"));
    let page = client.get(&unsubscribe).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(wait_for_stage(&base, key, &id, "clicked").await, "clicked");
    let done = client
        .post(&unsubscribe)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(
        wait_for_stage(&base, key, &id, "unsubscribed").await,
        "unsubscribed"
    );

    // What happened shows on /metrics, in the Prometheus text format.
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for line in [
        "mailtrail_queue_depth 0",
        "mailtrail_webhook_backlog 0",
        "mailtrail_events_total{kind=\"delivered\"} 1",
        "mailtrail_delivery_attempts_total{result=\"delivered\"} 1",
        "mailtrail_events_total{kind=\"opened\"} 1",
        "mailtrail_events_total{kind=\"unsubscribed\"} 1",
        "# TYPE mailtrail_events_total counter",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
}

/// A scanner that follows every link of an email at once is recorded as a machine; a person
/// who clicks two of three links, and the third a while later, is a person. Clicks still held
/// for the rule when the service gets SIGTERM are written before it exits.
#[tokio::test(flavor = "multi_thread")]
async fn a_scanner_following_every_link_at_once_is_a_machine() {
    let mut tracked = Tracked::start();
    let (key, base) = (tracked.key.clone(), tracked.base.clone());
    let client = without_redirects();
    let settings = json!({"click_tracking": true, "tracking_base_url": base});
    let (status, answer) = common::call(
        reqwest::Method::PATCH,
        &base,
        &key,
        "/v1/settings",
        &settings,
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // Three emails of three links each, and the tracked links of each as received.
    let html = "<html><body><a href=\"https://shop.example/1\">one</a> \
                <a href=\"https://shop.example/2\">two</a> \
                <a href=\"https://shop.example/3\">three</a></body></html>";
    let mut emails = Vec::new();
    for to in ["scanned@ok.test", "person@ok.test", "stopped@ok.test"] {
        let email = json!({"to": to, "from": "sales@shop.test", "subject": "Offer",
                           "html": html, "batch": "scan"});
        emails.push(common::send_email(&base, &key, &email).await);
    }
    let mut links = Vec::new();
    for id in &emails {
        let raw = common::received(&tracked.sink, id).await;
        let message = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        let mut html = message.body_html(0).unwrap().into_owned();
        let mut tracked = Vec::new();
        while html.contains(&format!("{base}/c/")) {
            let url = url_after(&html, &format!("{base}/c/"));
            html = html.replacen(&url, "", 1);
            tracked.push(url);
        }
        assert_eq!(tracked.len(), 3, "three tracked links");
        links.push(tracked);
    }
    // Past the machine threshold after delivery: only the new rule can flag these clicks.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let person = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36";
    let click = |url: String| {
        let client = client.clone();
        async move {
            let response = client
                .get(url)
                .header("user-agent", person)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 302, "answered at once, held or not");
        }
    };
    let every_link = |links: &[String]| {
        let [a, b, c] = [0, 1, 2].map(|i| click(links[i].clone()));
        async move {
            tokio::join!(a, b, c);
        }
    };

    every_link(&links[0]).await;
    click(links[1][0].clone()).await;
    click(links[1][1].clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    click(links[1][2].clone()).await;

    // Held clicks are written when their window closes: poll (briefly) for all of them.
    let clicks = |base: String, id: String| {
        let key = key.clone();
        async move {
            let mut last = Value::Null;
            for _ in 0..100 {
                last = common::get_json(&base, &key, &format!("/v1/emails/{id}")).await;
                let clicked: Vec<Value> = last["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["kind"] == "clicked")
                    .map(|e| e["machine"].clone())
                    .collect();
                if clicked.len() == 3 {
                    return (last["stage"].as_str().unwrap().to_owned(), clicked);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("not three clicks: {last}");
        }
    };
    let machine = Value::from("every-link-at-once");
    assert_eq!(
        clicks(base.clone(), emails[0].clone()).await,
        ("delivered".to_owned(), vec![machine.clone(); 3]),
        "a machine's clicks imply delivery only"
    );
    assert_eq!(
        clicks(base.clone(), emails[1].clone()).await,
        ("clicked".to_owned(), vec![Value::Null; 3])
    );

    // Every link at once, and the service stopped before the window closes.
    every_link(&links[2]).await;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(tracked.service.0.id() as i32, libc::SIGTERM) };
    let status = tracked.service.0.wait().unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status}");
    let (_service, base) = tracked.serve_again();
    assert_eq!(
        clicks(base.clone(), emails[2].clone()).await,
        ("delivered".to_owned(), vec![machine; 3]),
        "held clicks are written on a clean shutdown"
    );

    // The batch report counts the machines' clicks apart.
    let report = common::get_json(&base, &key, "/v1/reports/batches?batches=scan").await;
    let scan = &report["batches"][0];
    assert_eq!(
        (scan["clicked"].as_i64(), scan["machine_clicked"].as_i64()),
        (Some(1), Some(2)),
        "{report}"
    );
}
