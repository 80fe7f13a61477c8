//! Merge templates end to end: `mailtrail serve` renders a batch's Jinja subject, text and
//! HTML with each recipient's fields (a lead's name, API `fields`, nothing), and the message
//! smtp-sink receives over real SMTP, read by mail-parser, shows the defaults, the
//! conditionals and a lead's markup escaped in the HTML. A template that renders only with
//! the recipient's values and cannot fails its email as `contenterror`, and nothing is sent.

mod common;

use std::time::{Duration, Instant};

use mail_parser::MessageParser;
use mailtrail_testkit::smtp_sink::Sink;
use serde_json::json;

use common::KillOnDrop;

const SUBJECT: &str = "Hi {{ first_name | default(\"there\") }}{% if vip %} (VIP){% endif %}";
const TEXT: &str = "Hello {{ first_name | default(\"there\") }},\n\
                    {% if vip %}Your VIP code is {{ vip }}.\n{% endif %}bye\n";
const HTML: &str = "<p>Hello {{ first_name | default(\"there\") }}</p>\
                    {% if vip %}<p class=\"vip\">{{ vip }}</p>{% endif %}";

#[tokio::test(flavor = "multi_thread")]
async fn defaults_conditionals_and_escaping_reach_the_recipient() {
    let sink = Sink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mailtrail.toml");
    std::fs::write(
        &config,
        format!(
            "[outbound]\nhelo_name = \"mta.shop.test\"\n[outbound.routes]\n\"*\" = \"{}\"\n",
            sink.address()
        ),
    )
    .unwrap();
    let data = dir.path().join("data").display().to_string();
    let config = config.display().to_string();
    let env = [
        ("MAILTRAIL_CONFIG", config.as_str()),
        ("MAILTRAIL_DATA_DIR", data.as_str()),
    ];
    let (_, key) = common::create_account(&env, "Shop");
    let (child, base) = common::serve(&env);
    let _serve = KillOnDrop(child);
    let post = reqwest::Method::POST;

    let (status, lead) = common::call(
        post.clone(),
        &base,
        &key,
        "/v1/leads",
        &json!({"email": "bo@ok.test", "first_name": "<b>Bo</b> & Co"}),
    )
    .await;
    assert_eq!(status, 201, "{lead}");
    let batch = json!({
        "from": "sales@shop.test", "subject": SUBJECT, "text": TEXT, "html": HTML,
        "recipients": [
            {"to": "ana@ok.test", "fields": {"first_name": "Ana", "vip": "A-1"}},
            {"lead_id": lead["id"]},
            {"to": "cy@ok.test"},
        ],
    });
    let (status, queued) =
        common::call(post.clone(), &base, &key, "/v1/emails/batch", &batch).await;
    assert_eq!(status, 202, "{queued}");
    let ids: Vec<String> = queued["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    let expected = [
        (
            "Hi Ana (VIP)",
            "Hello Ana,\nYour VIP code is A-1.\nbye\n",
            "<p>Hello Ana</p><p class=\"vip\">A-1</p>",
        ),
        (
            "Hi <b>Bo</b> & Co",
            "Hello <b>Bo</b> & Co,\nbye\n",
            "<p>Hello &lt;b&gt;Bo&lt;/b&gt; &amp; Co</p>",
        ),
        ("Hi there", "Hello there,\nbye\n", "<p>Hello there</p>"),
    ];
    for (id, (subject, text, html)) in ids.iter().zip(expected) {
        let raw = common::received(&sink, id).await;
        let message = MessageParser::default().parse(raw.as_bytes()).unwrap();
        assert_eq!(message.subject(), Some(subject), "{raw}");
        let body_text = message.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(body_text.starts_with(text), "{body_text:?}\n{raw}");
        let body_html = message.body_html(0).unwrap();
        assert!(body_html.contains(html), "{body_html}\n{raw}");
    }

    // `nope + 1` is fine to submit (a recipient could have a number) but not for this one.
    let broken = json!({"to": "di@ok.test", "from": "sales@shop.test",
                        "subject": "Total {{ nope + 1 }}", "text": "Hi"});
    let id = common::send_email(&base, &key, &broken).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let email = loop {
        let email = common::get_json(&base, &key, &format!("/v1/emails/{id}")).await;
        if email["stage"] == "failed" {
            break email;
        }
        assert!(Instant::now() < deadline, "never failed: {email}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(email["reason"], "contenterror", "{email}");
    assert!(
        email["events"].to_string().contains("subject template"),
        "{email}"
    );
    assert!(!sink.messages().iter().any(|m| m.contains(&id)));
}
