//! What people and proxies do over HTTP with an accepted message: the requests reach the
//! tracking URLs in the message, with the right method, User-Agent and timing.

mod common;

use std::time::{Duration, Instant};

use axum::http::Method;
use common::{Capture, PERSON_DELAY, Web, deliver, message, route, sandbox};

/// Delivers a tracked message to `user@domain` and returns when it was accepted.
async fn deliver_tracked(sandbox: &mailtrail_sandbox::Sandbox, domain: &str, web: &Web) -> Instant {
    let to = format!("user@{domain}");
    deliver(&route(sandbox, domain), &to, &message(&to, &web.base)).await;
    Instant::now()
}

#[tokio::test]
async fn opens_fetches_the_pixel_like_a_mail_client_after_a_delay() {
    let (capture, web) = (Capture::start().await, Web::start().await);
    let sandbox = sandbox(capture.address).await;
    let accepted = deliver_tracked(&sandbox, "opens.sandbox.test", &web).await;
    let hits = web.wait_for(1).await;
    assert!(accepted.elapsed() >= PERSON_DELAY - Duration::from_millis(50));
    assert_eq!(hits[0].method, Method::GET);
    assert_eq!(hits[0].path, "/o/abc.gif");
    assert!(hits[0].user_agent.contains("Thunderbird"), "{hits:?}");
    sandbox.shutdown().await;
    assert_eq!(web.hits().len(), 1, "one open only");
}

#[tokio::test]
async fn machine_open_fetches_the_pixel_at_once_as_an_image_proxy() {
    let (capture, web) = (Capture::start().await, Web::start().await);
    let sandbox = sandbox(capture.address).await;
    deliver_tracked(&sandbox, "machine-open.sandbox.test", &web).await;
    let hits = web.wait_for(1).await;
    assert_eq!(hits[0].method, Method::GET);
    assert_eq!(hits[0].path, "/o/abc.gif");
    assert!(hits[0].user_agent.contains("GoogleImageProxy"), "{hits:?}");
    sandbox.shutdown().await;
}

#[tokio::test]
async fn clicks_opens_then_clicks_the_tracked_link_without_following_the_redirect() {
    let (capture, web) = (Capture::start().await, Web::start().await);
    let sandbox = sandbox(capture.address).await;
    deliver_tracked(&sandbox, "clicks.sandbox.test", &web).await;
    let hits = web.wait_for(2).await;
    assert_eq!(hits[0].path, "/o/abc.gif");
    assert_eq!(hits[1].method, Method::GET);
    assert_eq!(hits[1].path, "/c/def");
    assert!(hits[1].user_agent.contains("Firefox"), "{hits:?}");
    sandbox.shutdown().await;
    let paths: Vec<String> = web.hits().into_iter().map(|h| h.path).collect();
    assert_eq!(
        paths,
        ["/o/abc.gif", "/c/def"],
        "the redirect is not followed"
    );
}

#[tokio::test]
async fn unsubscribes_posts_one_click_to_the_list_unsubscribe_url() {
    let (capture, web) = (Capture::start().await, Web::start().await);
    let sandbox = sandbox(capture.address).await;
    deliver_tracked(&sandbox, "unsubscribes.sandbox.test", &web).await;
    let hits = web.wait_for(1).await;
    assert_eq!(hits[0].method, Method::POST);
    assert_eq!(hits[0].path, "/u/ghi");
    assert_eq!(hits[0].content_type, "application/x-www-form-urlencoded");
    assert_eq!(hits[0].body, "List-Unsubscribe=One-Click");
    sandbox.shutdown().await;
    assert_eq!(web.hits().len(), 1);
}

#[tokio::test]
async fn shutdown_waits_for_a_person_who_has_not_acted_yet() {
    let (capture, web) = (Capture::start().await, Web::start().await);
    let sandbox = sandbox(capture.address).await;
    deliver_tracked(&sandbox, "opens.sandbox.test", &web).await;
    assert!(web.hits().is_empty(), "the person waits {PERSON_DELAY:?}");
    sandbox.shutdown().await;
    assert_eq!(web.hits().len(), 1, "the open in flight finished");
}

#[tokio::test]
async fn a_message_without_tracking_is_left_alone() {
    let (capture, web) = (Capture::start().await, Web::start().await);
    let sandbox = sandbox(capture.address).await;
    let to = "user@clicks.sandbox.test";
    let plain =
        b"From: a@shop.test\r\nTo: user@clicks.sandbox.test\r\nSubject: hi\r\n\r\nplain\r\n";
    deliver(&route(&sandbox, "clicks.sandbox.test"), to, plain).await;
    sandbox.shutdown().await;
    assert!(web.hits().is_empty());
    assert!(capture.messages().is_empty());
}
