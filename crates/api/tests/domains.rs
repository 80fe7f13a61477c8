//! Sending domains through the API: registering one answers the records to publish (never
//! the private key) — DKIM, SPF and MX on its return path, DMARC — verifying looks them up in
//! real DNS (NSD) and says record by record what is missing, and with
//! `require_verified_domains` on, mail from any other domain is refused. A rotated key signs
//! only once DNS serves it, and the key it replaced stays listed for a week.

mod common;

use axum::http::StatusCode;
use common::{App, app};
use mailtrail_domain::Role;
use mailtrail_outbound::OutboundConfig;
use mailtrail_testkit::dns::Dns;
use serde_json::{Value, json};

fn outbound() -> OutboundConfig {
    OutboundConfig {
        helo_name: "mta.mailtrail.test".into(),
        ..OutboundConfig::default()
    }
}

async fn register(app: &App, key: &str, body: Value) -> Value {
    let (status, domain, _) = app.call("POST", "/v1/domains", Some(key), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{domain}");
    domain
}

/// The record of `purpose` among a domain's records.
fn record<'a>(domain: &'a Value, purpose: &str) -> &'a Value {
    domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} record in {domain}"))
}

/// A record's zone-file line: `name` relative to `zone`, TXT values quoted in pieces of at
/// most 255 characters, as DNS requires; an MX's host made absolute.
fn zone_line(record: &Value, zone: &str) -> String {
    let name = record["name"].as_str().unwrap();
    let relative = name
        .strip_suffix(zone)
        .map(|n| n.trim_end_matches('.'))
        .filter(|n| !n.is_empty())
        .unwrap_or("@");
    let value = record["value"].as_str().unwrap();
    if record["type"] == "MX" {
        return format!("{relative} IN MX {value}.");
    }
    let quoted: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    format!("{relative} IN TXT {}", quoted.join(" "))
}

#[tokio::test]
async fn registering_a_domain_answers_the_records_to_publish_but_never_the_key() {
    let mut app = app().await;
    let mut config = outbound();
    config.bounce_domain = Some("bounces.mailtrail.test".into());
    app.set_outbound(&config, "127.0.0.1:9".parse().unwrap());
    let (_, admin) = app.store.create_account("Acme").await.unwrap();
    let key = admin.key;

    let domain = register(&app, &key, json!({"domain": " Shop.Test. "})).await;
    assert_eq!(
        domain["domain"], "shop.test",
        "stored as From domains compare"
    );
    assert_eq!(domain["algorithm"], "rsa", "the default");
    assert_eq!(domain["verified"], false);
    assert_eq!(domain["return_path"], "bounces.shop.test", "the default");
    assert_eq!(domain["last_check"], Value::Null);
    let selector = domain["selector"].as_str().unwrap();
    let dkim = record(&domain, "dkim");
    assert_eq!(dkim["type"], "TXT");
    assert_eq!(dkim["name"], format!("{selector}._domainkey.shop.test"));
    assert!(
        dkim["value"]
            .as_str()
            .unwrap()
            .starts_with("v=DKIM1; k=rsa; p="),
        "{dkim}"
    );
    let spf = record(&domain, "spf");
    assert_eq!(
        (&spf["type"], &spf["name"], &spf["value"]),
        (
            &json!("TXT"),
            &json!("bounces.shop.test"),
            &json!("v=spf1 a:mta.mailtrail.test -all")
        ),
        "SPF on the return path, not on the installation's bounce domain"
    );
    let mx = record(&domain, "return_path");
    assert_eq!(
        (&mx["type"], &mx["name"], &mx["value"], &mx["required"]),
        (
            &json!("MX"),
            &json!("bounces.shop.test"),
            &json!("10 mta.mailtrail.test"),
            &json!(true)
        )
    );
    let dmarc = record(&domain, "dmarc");
    assert_eq!(
        (
            &dmarc["type"],
            &dmarc["name"],
            &dmarc["value"],
            &dmarc["required"]
        ),
        (
            &json!("TXT"),
            &json!("_dmarc.shop.test"),
            &json!("v=DMARC1; p=none"),
            &json!(false)
        )
    );

    // An Ed25519 signature beside the RSA one on request, its key at a second selector; and
    // SPF naming the configured source address.
    config.source_address = Some("192.0.2.7".parse().unwrap());
    app.set_outbound(&config, "127.0.0.1:9".parse().unwrap());
    let rsa = register(
        &app,
        &key,
        json!({"domain": "news.shop.test", "algorithm": "rsa+ed25519", "return_path": "RP.News.Shop.Test"}),
    )
    .await;
    assert_eq!(rsa["algorithm"], "rsa+ed25519");
    assert_eq!(rsa["return_path"], "rp.news.shop.test");
    assert_eq!(record(&rsa, "spf")["name"], "rp.news.shop.test");
    assert_eq!(record(&rsa, "return_path")["name"], "rp.news.shop.test");
    let selector = rsa["selector"].as_str().unwrap();
    let keys: Vec<(&str, &str)> = rsa["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["purpose"] == "dkim")
        .map(|r| {
            let value = r["value"].as_str().unwrap();
            (
                r["name"].as_str().unwrap(),
                value.split("; p=").next().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            (
                &*format!("{selector}._domainkey.news.shop.test"),
                "v=DKIM1; k=rsa"
            ),
            (
                &*format!("{selector}-ed25519._domainkey.news.shop.test"),
                "v=DKIM1; k=ed25519"
            ),
        ],
        "{rsa}"
    );
    assert_eq!(record(&rsa, "spf")["value"], "v=spf1 ip4:192.0.2.7 -all");

    let (status, list, _) = app.call("GET", "/v1/domains", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["news.shop.test", "shop.test"]);
    assert!(!list.to_string().contains("PRIVATE KEY"), "{list}");

    let (status, problem, _) = app
        .call(
            "POST",
            "/v1/domains",
            Some(&key),
            Some(json!({"domain": "SHOP.test"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    for (body, field) in [
        (json!({"domain": "not a domain"}), "domain"),
        (json!({"domain": "ana@shop.test"}), "domain"),
        (json!({"domain": "x.test", "algorithm": "dsa"}), "algorithm"),
        (
            json!({"domain": "x.test", "algorithm": "ed25519"}),
            "algorithm",
        ),
        // A return path outside the domain would not align with it.
        (
            json!({"domain": "x.test", "return_path": "bounces.other.test"}),
            "return_path",
        ),
        (
            json!({"domain": "x.test", "return_path": "evilx.test"}),
            "return_path",
        ),
    ] {
        let (status, problem, _) = app
            .call("POST", "/v1/domains", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    let (status, _, _) = app
        .call("DELETE", "/v1/domains/Shop.Test", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .call("GET", "/v1/domains/shop.test", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn verify(app: &App, key: &str, domain: &str) -> Value {
    let (status, answer, _) = app
        .call(
            "POST",
            &format!("/v1/domains/{domain}/verify"),
            Some(key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

/// How the last check found the record of `purpose`: ok, and the detail.
fn check(answer: &Value, purpose: &str) -> (bool, String) {
    let record = answer["last_check"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no {purpose} check in {answer}"));
    (
        record["ok"].as_bool().unwrap(),
        record["detail"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_domain_verifies_once_real_dns_serves_its_records_and_each_missing_one_is_named() {
    let mut app = app().await;
    app.set_outbound(&outbound(), "127.0.0.1:9".parse().unwrap());
    let (_, admin) = app.store.create_account("Acme").await.unwrap();
    let key = admin.key;
    let shop = register(&app, &key, json!({"domain": "shop.test"})).await;
    let partner = register(&app, &key, json!({"domain": "partner.test"})).await;
    let broken = register(&app, &key, json!({"domain": "broken.test"})).await;
    register(&app, &key, json!({"domain": "bare.test"})).await;

    // shop.test publishes every record as shown; partner.test an SPF record of its own and a
    // strict DMARC; broken.test partner.test's key under its own selector, and no SPF record.
    let stolen = json!({
        "name": record(&broken, "dkim")["name"],
        "value": record(&partner, "dkim")["value"],
    });
    let all = |domain: &Value, zone: &str| {
        ["dkim", "spf", "return_path", "dmarc"]
            .map(|purpose| zone_line(record(domain, purpose), zone))
            .join("\n")
    };
    let dns = Dns::start(&[
        ("shop.test", &all(&shop, "shop.test")),
        (
            "partner.test",
            &format!(
                "{}\n{}\nbounces IN TXT \"v=spf1 include:_spf.elsewhere.test -all\"\n\
                 _dmarc IN TXT \"v=DMARC1; p=reject; aspf=s; adkim=s\"",
                zone_line(record(&partner, "dkim"), "partner.test"),
                zone_line(record(&partner, "return_path"), "partner.test"),
            ),
        ),
        (
            "broken.test",
            &format!(
                "{}\n{}\n_dmarc IN TXT \"v=DMARC1; p=none\"\n_dmarc IN TXT \"v=DMARC1; p=reject\"",
                zone_line(&stolen, "broken.test"),
                zone_line(record(&broken, "return_path"), "broken.test"),
            ),
        ),
        ("bare.test", "www IN A 127.0.0.1"),
        (
            "mailtrail.test",
            "mta IN MX 10 mta.mailtrail.test.\nmta IN A 127.0.0.1",
        ),
    ]);
    app.set_outbound(&outbound(), dns.address);

    let shop = verify(&app, &key, "shop.test").await;
    assert_eq!(shop["verified"], true, "{shop}");
    assert!(shop["verified_at"].is_string());
    assert_eq!(shop["last_check"]["verified"], true);
    for purpose in ["dkim", "spf", "return_path", "dmarc"] {
        assert!(check(&shop, purpose).0, "{purpose}: {shop}");
    }
    assert!(check(&shop, "spf").1.contains("names a:mta.mailtrail.test"));
    assert_eq!(
        check(&shop, "return_path").1,
        "the MX of bounces.shop.test is mta.mailtrail.test"
    );
    assert_eq!(
        check(&shop, "dmarc").1,
        "policy p=none; SPF on bounces.shop.test aligns, and DKIM aligns"
    );
    let (_, shown, _) = app
        .call("GET", "/v1/domains/shop.test", Some(&key), None)
        .await;
    assert_eq!(shown["verified"], true, "the check is kept: {shown}");
    assert_eq!(shown["last_check"], shop["last_check"]);

    // SPF that may not cover the sending host still verifies, with a warning.
    let partner = verify(&app, &key, "partner.test").await;
    assert_eq!(partner["verified"], true, "{partner}");
    let (ok, detail) = check(&partner, "spf");
    assert!(
        ok && detail.contains("does not name a:mta.mailtrail.test"),
        "{detail}"
    );
    // Strict SPF alignment: the return path under partner.test no longer aligns; reported,
    // but DMARC does not decide verification.
    let (ok, detail) = check(&partner, "dmarc");
    assert!(
        !ok && detail.contains("policy p=reject; aspf=s")
            && detail.contains("DKIM aligns (adkim=s"),
        "{detail}"
    );

    let broken = verify(&app, &key, "broken.test").await;
    assert_eq!(broken["verified"], false, "{broken}");
    assert_eq!(broken["verified_at"], Value::Null);
    let (ok, detail) = check(&broken, "dkim");
    assert!(!ok && detail.contains("carries another key"), "{detail}");
    let (ok, detail) = check(&broken, "spf");
    assert!(!ok && detail.contains("no SPF record"), "{detail}");
    assert!(check(&broken, "return_path").0, "its MX is published");
    let (ok, detail) = check(&broken, "dmarc");
    assert!(!ok && detail.contains("2 DMARC records"), "{detail}");

    let bare = verify(&app, &key, "bare.test").await;
    assert_eq!(bare["verified"], false);
    let (ok, detail) = check(&bare, "dkim");
    let selector = bare["selector"].as_str().unwrap();
    assert!(
        !ok && detail == format!("no TXT record at {selector}._domainkey.bare.test"),
        "{detail}"
    );
    let (ok, detail) = check(&bare, "return_path");
    assert!(
        !ok && detail == "bounces.bare.test has no MX record",
        "{detail}"
    );

    // Without the return path's MX, bounces could not come back: not verified any more.
    let mut without_mx = all(&shop, "shop.test");
    without_mx = without_mx
        .lines()
        .filter(|l| !l.contains(" MX "))
        .collect::<Vec<_>>()
        .join("\n");
    let mut dns = dns;
    dns.restart(&[("shop.test", &without_mx)]);
    let shop = verify(&app, &key, "shop.test").await;
    assert_eq!(shop["verified"], false, "{shop}");
    assert_eq!(shop["verified_at"], Value::Null);
    let (ok, detail) = check(&shop, "return_path");
    assert!(
        !ok && detail.contains("bounces.shop.test has no MX"),
        "{detail}"
    );
}

#[tokio::test]
async fn another_accounts_domain_is_missing_and_users_may_not_manage_domains() {
    let app = app().await;
    let (acme, acme_admin) = app.store.create_account("Acme").await.unwrap();
    let (_, globex_admin) = app.store.create_account("Globex").await.unwrap();
    register(&app, &acme_admin.key, json!({"domain": "shop.test"})).await;

    for (method, path) in [
        ("GET", "/v1/domains/shop.test"),
        ("POST", "/v1/domains/shop.test/verify"),
        ("DELETE", "/v1/domains/shop.test"),
    ] {
        let (status, _, _) = app.call(method, path, Some(&globex_admin.key), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let (_, list, _) = app
        .call("GET", "/v1/domains", Some(&globex_admin.key), None)
        .await;
    assert_eq!(list["domains"], json!([]));

    let user = app
        .store
        .create_api_key(Some(&acme), Role::User)
        .await
        .unwrap();
    let (status, problem, _) = app.call("GET", "/v1/domains", Some(&user.key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(problem["detail"].as_str().unwrap().contains("admin"));
}

async fn send(app: &App, key: &str, from: &str) -> (StatusCode, Value, String) {
    let email = json!({"to": "ana@example.com", "from": from, "subject": "Hi", "text": "Hello"});
    app.call("POST", "/v1/emails", Some(key), Some(email)).await
}

#[tokio::test]
async fn mail_from_an_unverified_domain_is_refused_only_when_the_installation_requires_it() {
    let mut app = app().await;
    let (account, admin) = app.store.create_account("Acme").await.unwrap();
    let key = admin.key;

    // Off (the default): any From goes.
    let (status, answer, _) = send(&app, &key, "sales@x.test").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    let mut config = outbound();
    config.require_verified_domains = true;
    app.set_outbound(&config, "127.0.0.1:9".parse().unwrap());
    let (status, problem, _) = send(&app, &key, "sales@x.test").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "from");
    assert_eq!(
        problem["errors"][0]["message"],
        "sales@x.test: the domain x.test is not a verified sending domain of this account; \
         register it with POST /v1/domains and publish its records"
    );
    let (status, problem, _) = app
        .call(
            "POST",
            "/v1/emails/batch",
            Some(&key),
            Some(
                json!({"from": "sales@x.test", "subject": "Hi", "text": "Hello",
                        "recipients": [{"to": "ana@example.com"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // Registered is not enough; verified is.
    register(&app, &key, json!({"domain": "x.test"})).await;
    let (status, problem, _) = send(&app, &key, "sales@X.test").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("POST /v1/domains/x.test/verify"),
        "{problem}"
    );
    app.store
        .record_domain_check(&account, "x.test", true, "{}")
        .await
        .unwrap();
    let (status, answer, _) = send(&app, &key, "sales@X.test").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, _, _) = send(&app, &key, "sales@sub.x.test").await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a subdomain is a domain of its own"
    );
}

/// The selectors (`s=`) of the signatures mail From `from` gets now.
async fn signing_selectors(app: &App, account: &str, from: &str) -> Vec<String> {
    let signers = mailtrail_outbound::dkim::Signers::load(&Default::default())
        .unwrap()
        .with_account_key(&app.store, account, from)
        .await
        .unwrap();
    let message = format!("From: {from}\r\nTo: ana@example.com\r\nSubject: Hi\r\n\r\nHello\r\n");
    let headers = signers
        .sign(from.rsplit_once('@').unwrap().1, message.as_bytes())
        .expect("signed");
    headers
        .split("DKIM-Signature:")
        .filter_map(|header| {
            let tag = header
                .split(';')
                .find_map(|t| t.trim().strip_prefix("s="))?;
            Some(tag.trim().to_owned())
        })
        .collect()
}

/// The DKIM records of a domain answer: (selector, required, keep published until).
fn dkim_records(domain: &Value) -> Vec<(String, bool, Value)> {
    domain["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["purpose"] == "dkim")
        .map(|r| {
            let name = r["name"].as_str().unwrap();
            (
                name.split_once("._domainkey.").unwrap().0.to_owned(),
                r["required"].as_bool().unwrap(),
                r["keep_published_until"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_rotated_key_signs_only_once_dns_serves_it_and_the_old_one_is_kept_listed_for_a_week() {
    let mut app = app().await;
    app.set_outbound(&outbound(), "127.0.0.1:9".parse().unwrap());
    let (account, admin) = app.store.create_account("Acme").await.unwrap();
    let key = admin.key;
    let shop = register(&app, &key, json!({"domain": "shop.test"})).await;
    let old = shop["selector"].as_str().unwrap().to_owned();
    let published = |domain: &Value| {
        domain["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["keep_published_until"].is_null())
            .map(|r| zone_line(r, "shop.test"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mailtrail = "mta IN MX 10 mta.mailtrail.test.\nmta IN A 127.0.0.1";
    let mut dns = Dns::start(&[
        ("shop.test", &published(&shop)),
        ("mailtrail.test", mailtrail),
    ]);
    app.set_outbound(&outbound(), dns.address);
    assert_eq!(verify(&app, &key, "shop.test").await["verified"], true);
    assert_eq!(
        signing_selectors(&app, &account, "sales@shop.test").await,
        [old.as_str()]
    );

    // Rotating lists the new key beside the current one; mail is still signed with the old.
    let (status, rotated, _) = app
        .call("POST", "/v1/domains/shop.test/rotate", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["next_selector"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["selector"], old.as_str());
    assert_eq!(
        dkim_records(&rotated),
        [
            (old.clone(), true, Value::Null),
            (new.clone(), false, Value::Null)
        ]
    );
    let (_, shown, _) = app
        .call("GET", "/v1/domains/shop.test", Some(&key), None)
        .await;
    assert_eq!(shown["records"], rotated["records"]);
    assert_eq!(
        signing_selectors(&app, &account, "sales@shop.test").await,
        [old.as_str()]
    );

    // A check before the new record is in DNS says so, and changes nothing.
    let checked = verify(&app, &key, "shop.test").await;
    assert_eq!(
        checked["verified"], true,
        "the current key is still published"
    );
    assert_eq!(checked["selector"], old.as_str());
    assert_eq!(checked["next_selector"], new.as_str());
    let next_check = checked["last_check"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == format!("{new}._domainkey.shop.test"))
        .unwrap_or_else(|| panic!("the new key is checked: {checked}"));
    assert_eq!(next_check["ok"], false, "{next_check}");
    assert_eq!(
        signing_selectors(&app, &account, "sales@shop.test").await,
        [old.as_str()],
        "never signed with an unpublished key"
    );

    // Once DNS serves it, a check switches signing to it; the old record is to be kept
    // published for seven days.
    dns.restart(&[
        ("shop.test", &published(&rotated)),
        ("mailtrail.test", mailtrail),
    ]);
    let before = chrono::Utc::now();
    let switched = verify(&app, &key, "shop.test").await;
    assert_eq!(switched["verified"], true, "{switched}");
    assert_eq!(switched["selector"], new.as_str());
    assert_eq!(switched["next_selector"], Value::Null);
    let records = dkim_records(&switched);
    assert_eq!(records[0], (new.clone(), true, Value::Null), "{switched}");
    let (retired, required, until) = &records[1];
    assert_eq!((retired, required), (&old, &false));
    let until = chrono::DateTime::parse_from_rfc3339(until.as_str().unwrap()).unwrap();
    let week = chrono::Duration::days(7);
    assert!(
        until >= before + week && until <= chrono::Utc::now() + week,
        "{until}"
    );
    assert_eq!(records.len(), 2, "{switched}");
    assert_eq!(
        signing_selectors(&app, &account, "sales@shop.test").await,
        [new.as_str()]
    );
    // The switched-to key's record is the one verification needs now.
    let again = verify(&app, &key, "shop.test").await;
    assert_eq!(again["verified"], true, "{again}");
    assert_eq!(again["selector"], new.as_str());
}
