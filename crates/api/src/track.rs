//! The public tracking endpoints (docs/tracking.md), reachable by anyone: `GET /o/{token}.gif`
//! (open pixel), `GET|HEAD /c/{token}` (click redirect), `GET /u/{token}` (unsubscribe
//! page) and `POST /u/{token}` (the unsubscribe itself, also RFC 8058 one-click). A forged,
//! truncated or altered token is a 404 that writes nothing; a click redirects only to the URL
//! stored for that link of that email, and only if it is an http(s) one. Opens and clicks are
//! written through [`Hits`]: the email's context from a cache, the event batched, clicks on
//! emails with several links first held by [`crate::every_link`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use mailtrail_domain::event::USER_AGENT_MAX;
use mailtrail_domain::token::Purpose;
use mailtrail_domain::{Event, EventKind, Reason};
use mailtrail_outbound::tracking::is_web_link;
use mailtrail_store::{Effects, EmailId, Record, now_ms};

use crate::error::{ApiError, Problem};
use crate::hits::Hits;

/// A transparent 1×1 GIF (43 bytes).
const PIXEL: [u8; 43] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// User agents of privacy proxies and link scanners, which fetch images and follow links
/// without a person (lower-case fragments, and the reason recorded).
const MACHINES: &[(&str, &str)] = &[
    ("googleimageproxy", "google-image-proxy"),
    ("yahoomailproxy", "yahoo-proxy"),
    ("safelinks", "microsoft-safe-links"),
    ("safe links", "microsoft-safe-links"),
    ("bingpreview", "microsoft-safe-links"),
    ("mimecast", "mimecast"),
    ("proofpoint", "proofpoint"),
    ("urldefense", "proofpoint"),
    ("barracuda", "barracuda"),
    ("bot", "bot"),
    ("crawler", "bot"),
];

/// Why a hit looks like a machine's, if it does.
fn machine(
    method: &Method,
    headers: &HeaderMap,
    since_delivery: Option<i64>,
    threshold_secs: i64,
) -> Option<&'static str> {
    if method == Method::HEAD {
        return Some("head-request");
    }
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Apple Mail Privacy Protection fetches with a bare, detail-free agent.
    if agent == "mozilla/5.0" {
        return Some("apple-mail-privacy-protection");
    }
    if let Some((_, why)) = MACHINES
        .iter()
        .find(|(fragment, _)| agent.contains(fragment))
    {
        return Some(why);
    }
    match since_delivery {
        Some(ms) if ms < threshold_secs.saturating_mul(1000) => Some("too-soon-after-delivery"),
        _ => None,
    }
}

/// What was hit: the pixel, or one link of the email (its index and URL).
enum Hit {
    Open,
    Click { link: u16, url: String },
}

/// The connection's peer, when the server recorded it (tests driving the router without a
/// socket have none).
fn peer(request: &Parts) -> Option<IpAddr> {
    Some(
        request
            .extensions
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip()
            .to_canonical(),
    )
}

/// The last value a proxy added to header `name` (`a, b` → `b`; of several `name:` lines, the
/// last line's: HAProxy appends a line of its own after the client's), read only from a
/// reverse proxy on the same machine (the peer is a loopback address): from anywhere else the
/// `X-Forwarded-*` headers are only the client's say-so.
fn from_local_proxy<'a>(request: &'a Parts, name: &str) -> Option<&'a str> {
    if !peer(request)?.is_loopback() {
        return None;
    }
    let header = request
        .headers
        .get_all(name)
        .iter()
        .next_back()?
        .to_str()
        .ok()?;
    Some(header.rsplit(',').next()?.trim())
}

/// An address as proxies write it in `X-Forwarded-For`: `192.0.2.1`, `2001:db8::1`, or with
/// the client's port, `192.0.2.1:4000`, `[2001:db8::1]:4000`.
fn forwarded_ip(value: &str) -> Option<IpAddr> {
    value
        .parse()
        .ok()
        .or_else(|| value.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The address a request came from: behind a reverse proxy on the same machine, the last
/// address it added to `X-Forwarded-For`; otherwise the peer's. Also what the web UI's
/// sign-in throttle counts.
pub fn client_address(request: &Parts) -> Option<IpAddr> {
    let forwarded = from_local_proxy(request, "x-forwarded-for").and_then(forwarded_ip);
    let ip: IpAddr = forwarded.or_else(|| peer(request))?;
    Some(ip.to_canonical())
}

/// Whether the browser reached a reverse proxy on the same machine over https, as its
/// `X-Forwarded-Proto` says (the web UI's `Secure` cookies).
pub fn forwarded_https(request: &Parts) -> bool {
    from_local_proxy(request, "x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn client_ip(request: &Parts) -> Option<String> {
    client_address(request).map(|ip| ip.to_string())
}

/// The request's `User-Agent`, cut to what an event keeps.
fn user_agent(headers: &HeaderMap) -> Option<String> {
    let agent = String::from_utf8_lossy(headers.get(header::USER_AGENT)?.as_bytes());
    let mut end = agent.len().min(USER_AGENT_MAX);
    while !agent.is_char_boundary(end) {
        end -= 1;
    }
    Some(agent[..end].to_owned())
}

/// Stamps an event with where it came from.
fn from_client(mut event: Event, request: &Parts) -> Event {
    event.detail.ip = client_ip(request);
    event.detail.user_agent = user_agent(&request.headers);
    event
}

/// Records an open or a click, flagged when a machine made it.
async fn record_hit(
    hits: &Hits,
    email_id: &str,
    hit: Hit,
    request: &Parts,
) -> Result<(), ApiError> {
    let (method, headers) = (&request.method, &request.headers);
    let context = hits.context(email_id).await?.ok_or(ApiError::NotFound)?;
    let (kind, note) = match &hit {
        Hit::Open => (EventKind::Opened, None),
        Hit::Click { url, .. } => (EventKind::Clicked, Some(url.clone())),
    };
    let now = now_ms();
    let since_delivery = context.delivered_at_ms.map(|at| now - at);
    let mut event = from_client(Event::new(kind, now), request);
    event.detail.note = note;
    if let Some(why) = machine(
        method,
        headers,
        since_delivery,
        context.machine_threshold_secs,
    ) {
        event = event.by_machine(why);
    }
    // Batched with other hits: a burst of opens is one transaction, not one per hit.
    let record = Record {
        account_id: context.account_id,
        email_id: email_id.to_owned(),
        event,
        effects: Effects::default(),
    };
    match hit {
        Hit::Open => hits.open(record).await,
        Hit::Click { link, .. } => hits.click(record, link, context.links).await,
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/o/{file}",
    operation_id = "track_open",
    tag = "tracking",
    security(()),
    params(("file" = String, Path, description = "`TOKEN.gif`")),
    responses(
        (status = 200, description = "a transparent 1×1 GIF; the open is recorded", content_type = "image/gif", body = Vec<u8>),
        (status = 404, description = "a forged, truncated or altered token: nothing is recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn open(
    State(hits): State<Arc<Hits>>,
    Path(file): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let token = file.strip_suffix(".gif").ok_or(ApiError::NotFound)?;
    let token = hits
        .tokens
        .verify(token, Purpose::Open)
        .map_err(|_| ApiError::NotFound)?;
    record_hit(&hits, &token.email_id, Hit::Open, &request.into_parts().0).await?;
    let mut response = Bytes::from_static(&PIXEL).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::EXPIRES, HeaderValue::from_static("0"));
    Ok(response)
}

#[utoipa::path(
    get,
    path = "/c/{token}",
    operation_id = "track_click",
    tag = "tracking",
    security(()),
    params(("token" = String, Path, description = "the link's token")),
    responses(
        (status = 302, description = "to the link's URL; the click is recorded", headers(("Location" = String))),
        (status = 404, description = "a forged, truncated or altered token: nothing is recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn click(
    State(hits): State<Arc<Hits>>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let token = hits
        .tokens
        .verify(&token, Purpose::Click)
        .map_err(|_| ApiError::NotFound)?;
    let index = token.link.ok_or(ApiError::NotFound)?;
    let url = hits
        .store
        .link(&token.email_id, index)
        .await?
        .ok_or(ApiError::NotFound)?;
    // A `javascript:` or `data:` target stored before links were checked is never served.
    if !is_web_link(&url) {
        return Err(ApiError::NotFound);
    }
    let location = HeaderValue::from_str(&url).map_err(|_| ApiError::NotFound)?;
    record_hit(
        &hits,
        &token.email_id,
        Hit::Click { link: index, url },
        &request.into_parts().0,
    )
    .await?;
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2933}\
                          button{font-size:1rem;padding:.6rem 1.2rem;background:#1f4e8c;color:#fff;border:0;border-radius:4px;cursor:pointer}";

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title><style>{PAGE_STYLE}</style></head><body>{body}</body></html>"
    ))
}

/// The confirmation page: link scanners follow GETs, so the unsubscribe itself is a POST.
#[utoipa::path(
    get,
    path = "/u/{token}",
    operation_id = "unsubscribe_page",
    tag = "tracking",
    security(()),
    params(("token" = String, Path, description = "the unsubscribe token")),
    responses(
        (status = 200, description = "a page asking to confirm", content_type = "text/html", body = String),
        (status = 404, description = "a forged, truncated or altered token: nothing is recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unsubscribe_page(
    State(hits): State<Arc<Hits>>,
    Path(token): Path<String>,
) -> Result<Html<String>, ApiError> {
    hits.tokens
        .verify(&token, Purpose::Unsubscribe)
        .map_err(|_| ApiError::NotFound)?;
    Ok(page(
        "Unsubscribe",
        &format!(
            "<h1>Unsubscribe</h1><p>Stop receiving these emails?</p>\
             <form method=\"post\" action=\"/u/{token}\"><button type=\"submit\">Unsubscribe</button></form>"
        ),
    ))
}

/// Unsubscribes, committed before the answer: stage `unsubscribed`, Permission to Email No,
/// the address suppressed.
#[utoipa::path(
    post,
    path = "/u/{token}",
    operation_id = "unsubscribe",
    tag = "tracking",
    security(()),
    params(("token" = String, Path, description = "the unsubscribe token")),
    responses(
        (status = 200, description = "unsubscribed (also RFC 8058 one-click)", content_type = "text/html", body = String),
        (status = 404, description = "a forged, truncated or altered token: nothing is recorded", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unsubscribe(
    State(hits): State<Arc<Hits>>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Html<String>, ApiError> {
    let token = hits
        .tokens
        .verify(&token, Purpose::Unsubscribe)
        .map_err(|_| ApiError::NotFound)?;
    let account_id = hits
        .store
        .email_account(&token.email_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let event = from_client(
        Event::new(EventKind::Unsubscribed, now_ms()).with_reason(Reason::Unsubscribed),
        &request.into_parts().0,
    );
    let effects = Effects {
        suppress: true,
        ..Effects::default()
    };
    hits.store
        .record(
            &account_id,
            &EmailId::from(&token.email_id),
            &event,
            effects,
        )
        .await?;
    Ok(page(
        "Unsubscribed",
        "<h1>You are unsubscribed</h1><p>You will not receive these emails any more.</p>",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request from `peer` with one `X-Forwarded-For` line for each of `forwarded`.
    fn parts(peer: &str, forwarded: &[&str], agent: Option<&[u8]>) -> Parts {
        let mut request = Request::builder().uri("/o/x.gif");
        for line in forwarded {
            request = request.header("x-forwarded-for", *line);
        }
        if let Some(agent) = agent {
            request = request.header(header::USER_AGENT, HeaderValue::from_bytes(agent).unwrap());
        }
        let mut parts = request.body(()).unwrap().into_parts().0;
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_proxy_on_this_machine() {
        let cases: [(&str, &[&str], &str); 14] = [
            ("203.0.113.5:4000", &[], "203.0.113.5"),
            // A client that is no proxy on this machine says what it likes: ignored.
            ("203.0.113.5:4000", &["198.51.100.1"], "203.0.113.5"),
            ("[2001:db8::9]:4000", &["198.51.100.1"], "2001:db8::9"),
            ("127.0.0.1:4000", &["198.51.100.1"], "198.51.100.1"),
            // The client's own item comes first, the proxy's last.
            (
                "127.0.0.1:4000",
                &["10.0.0.1, 198.51.100.1"],
                "198.51.100.1",
            ),
            // A proxy that appends a line of its own (HAProxy): the client's line is not it.
            (
                "127.0.0.1:4000",
                &["10.0.0.1", "198.51.100.1"],
                "198.51.100.1",
            ),
            (
                "127.0.0.1:4000",
                &["10.0.0.1, 10.0.0.2", "198.51.100.3, 198.51.100.1"],
                "198.51.100.1",
            ),
            ("[::1]:4000", &["2001:db8::7"], "2001:db8::7"),
            // With the client's port.
            ("127.0.0.1:4000", &["198.51.100.1:5123"], "198.51.100.1"),
            ("127.0.0.1:4000", &["[2001:db8::7]:5123"], "2001:db8::7"),
            ("127.0.0.1:4000", &["::ffff:198.51.100.2"], "198.51.100.2"),
            ("127.0.0.1:4000", &["not an address"], "127.0.0.1"),
            ("127.0.0.1:4000", &["198.51.100.1", "unknown"], "127.0.0.1"),
            ("[::ffff:192.0.2.8]:4000", &[], "192.0.2.8"),
        ];
        for (peer, forwarded, expected) in cases {
            let ip = client_ip(&parts(peer, forwarded, None));
            assert_eq!(ip.as_deref(), Some(expected), "{peer} {forwarded:?}");
        }
    }

    #[test]
    fn https_is_believed_only_from_a_proxy_on_this_machine() {
        for (peer, proto, https) in [
            ("127.0.0.1:4000", Some("https"), true),
            ("[::1]:4000", Some("HTTPS"), true),
            ("[::ffff:127.0.0.1]:4000", Some("https"), true),
            ("127.0.0.1:4000", Some("http, https"), true),
            ("127.0.0.1:4000", Some("https, http"), false),
            ("127.0.0.1:4000", None, false),
            ("203.0.113.5:4000", Some("https"), false),
        ] {
            let mut parts = parts(peer, &[], None);
            if let Some(proto) = proto {
                parts
                    .headers
                    .insert("x-forwarded-proto", HeaderValue::from_str(proto).unwrap());
            }
            assert_eq!(forwarded_https(&parts), https, "{peer} {proto:?}");
        }
    }

    #[test]
    fn user_agents_are_kept_whole_up_to_the_limit_and_never_split_a_character() {
        let agent = |bytes: &[u8]| user_agent(&parts("127.0.0.1:1", &[], Some(bytes)).headers);
        assert_eq!(
            agent(b"Mozilla/5.0 (X11)").as_deref(),
            Some("Mozilla/5.0 (X11)")
        );
        let long = "é".repeat(USER_AGENT_MAX);
        let kept = agent(long.as_bytes()).unwrap();
        assert_eq!(kept, "é".repeat(USER_AGENT_MAX / 2));
        let odd = format!("a{long}");
        assert_eq!(agent(odd.as_bytes()).unwrap().len(), USER_AGENT_MAX - 1);
        assert_eq!(user_agent(&HeaderMap::new()), None);
    }

    fn agent(ua: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::USER_AGENT, HeaderValue::from_str(ua).unwrap());
        headers
    }

    #[test]
    fn machines_are_recognised() {
        let person = agent(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15",
        );
        assert_eq!(machine(&Method::GET, &person, Some(60_000), 2), None);
        assert_eq!(
            machine(&Method::HEAD, &person, Some(60_000), 2),
            Some("head-request")
        );
        assert_eq!(
            machine(&Method::GET, &person, Some(500), 2),
            Some("too-soon-after-delivery")
        );
        assert_eq!(
            machine(&Method::GET, &agent("Mozilla/5.0"), None, 2),
            Some("apple-mail-privacy-protection")
        );
        assert_eq!(
            machine(
                &Method::GET,
                &agent(
                    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
                ),
                None,
                2
            ),
            Some("google-image-proxy")
        );
        assert_eq!(
            machine(&Method::GET, &agent("Mimecast-Link-Scanner/1.0"), None, 2),
            Some("mimecast")
        );
    }

    #[test]
    fn the_pixel_is_a_43_byte_gif() {
        assert_eq!(PIXEL.len(), 43);
        assert_eq!(&PIXEL[..6], b"GIF89a");
    }
}
