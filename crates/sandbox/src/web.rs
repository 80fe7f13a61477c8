//! What a person's mail client, a person in a browser or a privacy proxy does over HTTP with a
//! received message: fetch the open pixel, click the first tracked link (one request, the
//! redirect not followed), or unsubscribe with one click (RFC 8058). The URLs are the ones
//! in the message, found by plain string work on its HTML part and headers.

use reqwest::header::{CONTENT_TYPE, USER_AGENT};

use crate::follow_up::{TryError, parse, retrying};

/// A person's desktop mail client, which loads images when the message is opened.
const MAIL_CLIENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.5.0";
/// A person's browser, which opens a clicked link.
const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
/// Gmail's image proxy, which fetches images when a message arrives, before anyone reads it.
const IMAGE_PROXY: &str =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

/// The tracking URLs of one message.
#[derive(Debug, Default, PartialEq, Eq)]
struct Urls {
    /// `…/o/TOKEN.gif` in an `<img src>`.
    pixel: Option<String>,
    /// The first `…/c/TOKEN` in an `<a href>`.
    click: Option<String>,
    /// The http(s) URL of `List-Unsubscribe`, when `List-Unsubscribe-Post` offers one-click.
    one_click: Option<String>,
}

fn urls(raw: &[u8]) -> Urls {
    let Some(message) = parse(raw) else {
        return Urls::default();
    };
    let html = message.body_html(0).unwrap_or_default();
    let one_click_offered = message
        .header_raw("List-Unsubscribe-Post")
        .is_some_and(|v| v.contains("List-Unsubscribe=One-Click"));
    Urls {
        pixel: attribute_values(&html, "img", "src").find(|u| is_pixel(u)),
        click: attribute_values(&html, "a", "href").find(|u| is_click(u)),
        one_click: message
            .header_raw("List-Unsubscribe")
            .filter(|_| one_click_offered)
            .and_then(unsubscribe_url),
    }
}

/// A person opens the message.
pub(crate) async fn open(raw: &[u8], http: &reqwest::Client) {
    fetch_pixel(urls(raw).pixel, MAIL_CLIENT, http).await;
}

/// A privacy proxy fetches the pixel as the message arrives.
pub(crate) async fn machine_open(raw: &[u8], http: &reqwest::Client) {
    fetch_pixel(urls(raw).pixel, IMAGE_PROXY, http).await;
}

/// A person opens the message and clicks its first tracked link.
pub(crate) async fn click(raw: &[u8], http: &reqwest::Client) {
    let urls = urls(raw);
    fetch_pixel(urls.pixel, MAIL_CLIENT, http).await;
    let Some(url) = urls.click else {
        tracing::warn!("sandbox click: the message has no tracked link");
        return;
    };
    retrying("click", &url, || request(http.get(&url), BROWSER)).await;
}

/// A person's mail client unsubscribes with one click.
pub(crate) async fn unsubscribe(raw: &[u8], http: &reqwest::Client) {
    let Some(url) = urls(raw).one_click else {
        tracing::warn!("sandbox unsubscribe: the message offers no one-click unsubscribe");
        return;
    };
    let post = || {
        let form = http
            .post(&url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click");
        request(form, MAIL_CLIENT)
    };
    retrying("one-click unsubscribe", &url, post).await;
}

async fn fetch_pixel(pixel: Option<String>, agent: &str, http: &reqwest::Client) {
    let Some(url) = pixel else {
        tracing::warn!("sandbox open: the message has no open pixel");
        return;
    };
    retrying("fetch the pixel", &url, || request(http.get(&url), agent)).await;
}

/// Sends one request; any answer but a server error counts as done.
async fn request(request: reqwest::RequestBuilder, agent: &str) -> Result<(), TryError> {
    let response = request
        .header(USER_AGENT, agent)
        .send()
        .await
        .map_err(TryError::Http)?;
    let status = response.status();
    if status.is_server_error() {
        return Err(TryError::ServerError(status));
    }
    tracing::debug!(url = %response.url(), %status, "sandbox request answered");
    Ok(())
}

fn is_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn is_pixel(url: &str) -> bool {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    is_http(url) && path.contains("/o/") && path.ends_with(".gif")
}

fn is_click(url: &str) -> bool {
    is_http(url) && url.contains("/c/")
}

/// The first http(s) URL of a `List-Unsubscribe` value (`<https://…>, <mailto:…>`).
fn unsubscribe_url(value: &str) -> Option<String> {
    value
        .split(',')
        .map(|part| {
            part.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
        })
        .find(|url| is_http(url))
        .map(str::to_owned)
}

/// The values of `attribute` in every `<tag …>` of `html`, entity-decoded.
fn attribute_values<'a>(
    html: &'a str,
    tag: &'a str,
    attribute: &'a str,
) -> impl Iterator<Item = String> + 'a {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let mut values = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find(&open) {
        let start = at + found + open.len();
        let end = lower[start..].find('>').map_or(lower.len(), |n| start + n);
        at = end;
        // `<a` must not match `<abbr`.
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        if let Some(value) = attribute_value(&html[start..end], &lower[start..end], attribute) {
            values.push(value);
        }
    }
    values.into_iter()
}

/// The value of `name` inside one tag (`tag` as written, `lower` lower-cased).
fn attribute_value(tag: &str, lower: &str, name: &str) -> Option<String> {
    let mut at = 0;
    let rest = loop {
        let found = at + lower[at..].find(name)?;
        at = found + name.len();
        let whole_name = lower[..found].ends_with(|c: char| c.is_ascii_whitespace());
        if let Some(value) = lower[at..].trim_start().strip_prefix('=')
            && whole_name
        {
            // `lower` has the byte layout of `tag`: the value is the same suffix of both.
            break &tag[tag.len() - value.trim_start().len()..];
        }
    };
    let value = match rest.chars().next() {
        Some(quote @ ('"' | '\'')) => rest[1..].split(quote).next()?,
        _ => rest
            .split(|c: char| c.is_ascii_whitespace() || c == '>')
            .next()?,
    };
    Some(value.trim().replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_pixel_the_first_tracked_link_and_the_one_click_url() {
        let raw = b"From: a@b.test\r\n\
            List-Unsubscribe: <http://t.test/u/ghi>, <mailto:unsubscribe+x@b.test>\r\n\
            List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
            Content-Type: text/html\r\n\r\n\
            <abbr href=\"http://t.test/c/not-a-link\">x</abbr>\
            <a data-notrack href=\"https://shop.test/plain\">plain</a>\
            <A HREF='http://t.test/c/def?a=1&amp;b=2'>go</A>\
            <img src=\"logo.png\"><img alt=\"\" src=http://t.test/o/abc.gif width=1>";
        assert_eq!(
            urls(raw),
            Urls {
                pixel: Some("http://t.test/o/abc.gif".into()),
                click: Some("http://t.test/c/def?a=1&b=2".into()),
                one_click: Some("http://t.test/u/ghi".into()),
            }
        );
    }

    #[test]
    fn offers_nothing_without_html_or_one_click() {
        let raw = b"From: a@b.test\r\nList-Unsubscribe: <http://t.test/u/ghi>\r\n\r\nhi\r\n";
        assert_eq!(urls(raw), Urls::default());
        assert_eq!(urls(b"\x00\xff"), Urls::default());
    }

    #[test]
    fn a_name_inside_another_attribute_is_not_the_attribute() {
        let tag = " data-src=\"x\" src=\"http://t.test/o/a.gif\"";
        assert_eq!(
            attribute_value(tag, &tag.to_ascii_lowercase(), "src"),
            Some("http://t.test/o/a.gif".into())
        );
    }
}
