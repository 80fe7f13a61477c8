//! What tracking adds to a message at send time (PRODUCT.md §4): the visible unsubscribe
//! link (always), the open pixel (with open tracking on), and every link of the HTML part
//! rewritten to a signed redirect (with click tracking on). Pure string work, tested here.

use mailtrail_domain::token::{Purpose, TokenKey};

/// The tracking switches and base URL for one email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// `https://track.example.com`, without a trailing slash.
    pub base_url: String,
    pub opens: bool,
    pub clicks: bool,
}

/// An attribute that keeps one link out of click tracking: `<a data-notrack href=…>`.
pub const NO_TRACK: &str = "data-notrack";

/// The URL of the email's unsubscribe page.
pub fn unsubscribe_url(tracking: &Tracking, tokens: &TokenKey, email_id: &str) -> String {
    let token = tokens
        .sign(Purpose::Unsubscribe, email_id, None)
        .expect("email ids are UUIDs");
    format!("{}/u/{token}", tracking.base_url)
}

/// The HTML part as sent, and the original URLs of the links it rewrote, by index.
pub fn html(
    html: &str,
    tracking: &Tracking,
    tokens: &TokenKey,
    email_id: &str,
) -> (String, Vec<String>) {
    let (mut out, links) = if tracking.clicks {
        rewrite_links(html, tracking, tokens, email_id)
    } else {
        (html.to_owned(), Vec::new())
    };
    let mut footer = String::new();
    if tracking.opens {
        let token = tokens
            .sign(Purpose::Open, email_id, None)
            .expect("email ids are UUIDs");
        footer.push_str(&format!(
            "<img src=\"{}/o/{token}.gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
            tracking.base_url
        ));
    }
    footer.push_str(&format!(
        "<p style=\"font-size:12px;color:#666\"><a href=\"{}\">Unsubscribe</a></p>",
        unsubscribe_url(tracking, tokens, email_id)
    ));
    insert_before_body_end(&mut out, &footer);
    (out, links)
}

/// The text part as sent: the unsubscribe link at the end.
pub fn text(text: &str, tracking: &Tracking, tokens: &TokenKey, email_id: &str) -> String {
    format!(
        "{text}\r\n\r\n--\r\nUnsubscribe: {}\r\n",
        unsubscribe_url(tracking, tokens, email_id)
    )
}

fn insert_before_body_end(html: &mut String, fragment: &str) {
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(at) => html.insert_str(at, fragment),
        None => html.push_str(fragment),
    }
}

/// Whether `url` is an absolute `http:` or `https:` link: the only ones tracked, and the only
/// ones the click redirect serves (never `javascript:`, `data:`, `mailto:`, …).
pub fn is_web_link(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    })
}

/// Rewrites every http(s) `href` of the HTML ([`is_web_link`]) to a click-tracking URL,
/// except links marked [`NO_TRACK`]; `mailto:`, `javascript:`, in-page anchors and the like
/// are left as they are. The stored targets are entity-decoded, so `&amp;` in a query string
/// reaches the browser as `&`.
fn rewrite_links(
    html: &str,
    tracking: &Tracking,
    tokens: &TokenKey,
    email_id: &str,
) -> (String, Vec<String>) {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len());
    let mut links = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("href=") {
        let attr = pos + found;
        let value_start = attr + 5;
        let quote = html[value_start..].chars().next();
        let (start, end) = match quote {
            Some(q @ ('"' | '\'')) => match html[value_start + 1..].find(q) {
                Some(len) => (value_start + 1, value_start + 1 + len),
                None => break,
            },
            _ => {
                let len = html[value_start..]
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(html.len() - value_start);
                (value_start, value_start + len)
            }
        };
        let tag_start = lower[..attr].rfind('<').unwrap_or(0);
        let tag_end = lower[attr..].find('>').map_or(html.len(), |n| attr + n);
        let target = decode_entities(html[start..end].trim());
        let skip = !is_web_link(&target) || lower[tag_start..tag_end].contains(NO_TRACK);
        out.push_str(&html[pos..start]);
        if skip {
            out.push_str(&html[start..end]);
        } else {
            let index = u16::try_from(links.len()).unwrap_or(u16::MAX);
            let token = tokens
                .sign(Purpose::Click, email_id, Some(index))
                .expect("email ids are UUIDs");
            out.push_str(&format!("{}/c/{token}", tracking.base_url));
            links.push(target);
        }
        pos = end;
    }
    out.push_str(&html[pos..]);
    (out, links)
}

/// Decodes the HTML character references that appear in URLs.
fn decode_entities(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let decoded = after.find(';').filter(|n| *n <= 10).and_then(|n| {
            let name = &after[..n];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, n))
        });
        match decoded {
            Some((c, n)) => {
                out.push(c);
                rest = &after[n + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";

    fn tracking(opens: bool, clicks: bool) -> Tracking {
        Tracking {
            base_url: "https://t.example".into(),
            opens,
            clicks,
        }
    }

    #[test]
    fn links_are_rewritten_and_their_targets_kept_exactly() {
        let tokens = TokenKey::new(b"k");
        let long = format!("https://shop.example/p?q={}", "x".repeat(3000));
        let html = format!(
            "<html><body><a href=\"https://shop.example/a?x=1&amp;y=2#top\">A</a> \
             <A HREF='https://shop.example/ünï?ç=1'>B</A> <a href=\"mailto:a@b.example\">M</a> \
             <a href=\"#here\">H</a> <a data-notrack href=\"https://keep.example\">K</a> \
             <a href=\"tel:+123\">T</a> <a href=\"{long}\">L</a></body></html>"
        );
        let (out, links) = super::html(&html, &tracking(false, true), &tokens, ID);
        assert_eq!(
            links,
            [
                "https://shop.example/a?x=1&y=2#top",
                "https://shop.example/ünï?ç=1",
                long.as_str()
            ]
        );
        for (index, _) in links.iter().enumerate() {
            let token = tokens.sign(Purpose::Click, ID, Some(index as u16)).unwrap();
            assert!(
                out.contains(&format!("https://t.example/c/{token}")),
                "{out}"
            );
        }
        for kept in [
            "mailto:a@b.example",
            "href=\"#here\"",
            "https://keep.example",
            "tel:+123",
        ] {
            assert!(out.contains(kept), "{kept}");
        }
        assert!(out.contains("/u/"), "the unsubscribe link is always there");
        assert!(!out.contains("/o/"), "no pixel with open tracking off");
        assert!(out.ends_with("</p></body></html>"));
    }

    #[test]
    fn tracking_off_leaves_the_html_alone_but_adds_the_unsubscribe_link() {
        let tokens = TokenKey::new(b"k");
        let html = "<p><a href=\"https://shop.example/?a=1&amp;b=2\">Shop</a></p>";
        let (out, links) = super::html(html, &tracking(false, false), &tokens, ID);
        assert!(links.is_empty());
        assert!(out.starts_with(html));
        let unsubscribe = unsubscribe_url(&tracking(false, false), &tokens, ID);
        assert!(out.contains(&unsubscribe));
        assert!(text("Hi", &tracking(false, false), &tokens, ID).contains(&unsubscribe));
    }

    #[test]
    fn the_pixel_goes_before_the_end_of_the_body() {
        let tokens = TokenKey::new(b"k");
        let (out, _) = super::html("<body>Hi</BODY>", &tracking(true, false), &tokens, ID);
        let token = tokens.sign(Purpose::Open, ID, None).unwrap();
        let pixel = out
            .find(&format!("https://t.example/o/{token}.gif"))
            .unwrap();
        assert!(pixel < out.find("</BODY>").unwrap());
    }

    #[test]
    fn only_http_links_are_tracked() {
        for (url, web) in [
            ("https://shop.example/", true),
            ("HTTP://shop.example/", true),
            ("javascript:alert(1)", false),
            (" https://shop.example/", false),
            ("data:text/html,<script>alert(1)</script>", false),
            ("/relative", false),
            ("https:", false),
            ("", false),
        ] {
            assert_eq!(is_web_link(url), web, "{url}");
        }
        let tokens = TokenKey::new(b"k");
        let html = "<a href=\"javascript:alert(1)\">J</a><a href=\"&#106;avascript:x\">E</a>\
                    <a href=\"data:text/html,x\">D</a><a href=\"/p\">R</a>";
        let (out, links) = super::html(html, &tracking(false, true), &tokens, ID);
        assert!(links.is_empty(), "{links:?}");
        assert!(out.starts_with(html), "{out}");
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            decode_entities("a&amp;b&#38;c&#x26;d&lt;&unknown;&"),
            "a&b&c&d<&unknown;&"
        );
    }
}
