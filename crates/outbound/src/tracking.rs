//! What tracking adds to a message at send time (docs/tracking.md, docs/api.md): the visible unsubscribe
//! link (always), the open pixel (with open tracking on), and every real link rewritten to a
//! signed redirect (with click tracking on).
//!
//! The HTML part goes through one pass of `lol_html`, a streaming rewriter that tokenizes as a
//! browser does. So only the `href` of an `<a>` or `<area>` element is ever a link: a
//! stylesheet's `<link href>`, a `<base href>`, a comment (Outlook's `<!--[if mso]>` included),
//! visible text and other attributes that merely contain `href=` stay byte for byte as written.
//! The same pass puts the pixel and the unsubscribe link before `</body>`, and makes a `<meta>`
//! that declares a charset other than UTF-8 declare UTF-8, which is what the part is sent in.

use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;

use lol_html::html_content::{ContentType, Element};
use lol_html::{RewriteStrSettings, element, end, end_tag, rewrite_str};
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

/// The merge field that becomes the email's unsubscribe URL, so a sender's own footer
/// (`<a href="{{unsubscribe_url}}">`) is the unsubscribe link and no second one is added.
pub const UNSUBSCRIBE_FIELD: &str = "unsubscribe_url";

/// The URL of the email's unsubscribe page.
pub fn unsubscribe_url(tracking: &Tracking, tokens: &TokenKey, email_id: &str) -> String {
    let token = tokens
        .sign(Purpose::Unsubscribe, email_id, None)
        .expect("email ids are UUIDs");
    format!("{}/u/{token}", tracking.base_url)
}

/// `body` with each `{{unsubscribe_url}}` (spaces inside the braces allowed) replaced by
/// `url`, HTML-escaped for an HTML part. A submitted message has no merge fields; this one
/// placeholder lets its sender place the unsubscribe link, as a template's footer can.
pub fn fill_unsubscribe<'a>(body: &'a str, url: &str, html: bool) -> Cow<'a, str> {
    let mut out = String::new();
    let mut changed = false;
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(len) = after.find("}}") else { break };
        out.push_str(&rest[..start]);
        if after[..len].trim() == UNSUBSCRIBE_FIELD {
            changed = true;
            if html {
                out.push_str(&htmlize::escape_attribute(url));
            } else {
                out.push_str(url);
            }
        } else {
            out.push_str(&rest[start..start + 2 + len + 2]);
        }
        rest = &after[len + 2..];
    }
    if !changed {
        return Cow::Borrowed(body);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// The HTML part as sent. The original URL of each link rewritten is pushed to `links`; its
/// index there is the one its redirect token carries.
pub fn html(
    html: &str,
    tracking: &Tracking,
    tokens: &TokenKey,
    email_id: &str,
    links: &mut Vec<String>,
) -> String {
    let unsubscribe = unsubscribe_url(tracking, tokens, email_id);
    let footer = Rc::new(Footer {
        pixel: tracking.opens.then(|| {
            let token = tokens
                .sign(Purpose::Open, email_id, None)
                .expect("email ids are UUIDs");
            format!(
                "<img src=\"{}/o/{token}.gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">",
                tracking.base_url
            )
        }),
        link: format!(
            "<p style=\"font-size:12px;color:#666\"><a href=\"{}\">Unsubscribe</a></p>",
            htmlize::escape_attribute(&unsubscribe)
        ),
        has_unsubscribe: Cell::new(false),
        placed: Cell::new(false),
    });
    let at_body_end = Rc::clone(&footer);
    let at_document_end = Rc::clone(&footer);
    let seen = Rc::clone(&footer);
    let settings = RewriteStrSettings::new()
        .append_element_content_handler(element!("a[href], area[href]", |el| {
            let Some(target) = el.get_attribute("href").map(|raw| target(&raw)) else {
                return Ok(());
            };
            if target == unsubscribe {
                seen.has_unsubscribe.set(true);
            } else if tracking.clicks && is_web_link(&target) && !el.has_attribute(NO_TRACK) {
                redirect(el, tracking, tokens, email_id, links.len())?;
                links.push(target);
            }
            Ok(())
        }))
        // The part goes out as UTF-8 (a template is a Rust string, a submitted part is
        // decoded and re-encoded): a `<meta>` declaring another charset would make a browser
        // or mail program read it wrong, so it is made to say utf-8.
        .append_element_content_handler(element!("meta[charset]", |el| {
            if el.get_attribute("charset").is_some_and(|c| !is_utf8(&c)) {
                el.set_attribute("charset", "utf-8")?;
            }
            Ok(())
        }))
        .append_element_content_handler(element!("meta[http-equiv][content]", |el| {
            let declares = el
                .get_attribute("http-equiv")
                .is_some_and(|h| h.trim().eq_ignore_ascii_case("content-type"));
            let other = el.get_attribute("content").is_some_and(|content| {
                content
                    .to_ascii_lowercase()
                    .split_once("charset=")
                    .is_some_and(|(_, charset)| !is_utf8(charset))
            });
            if declares && other {
                el.set_attribute("content", "text/html; charset=utf-8")?;
            }
            Ok(())
        }))
        .append_element_content_handler(element!("body", move |el| {
            let footer = Rc::clone(&at_body_end);
            if let Some(handlers) = el.end_tag_handlers() {
                handlers.push(end_tag!(move |end| {
                    if !footer.placed.replace(true) {
                        end.before(&footer.html(), ContentType::Html);
                    }
                    Ok(())
                }));
            }
            Ok(())
        }))
        // A document without `</body>` gets the footer at its very end, as it always has.
        .append_document_content_handler(end!(move |end| {
            if !at_document_end.placed.replace(true) {
                end.append(&at_document_end.html(), ContentType::Html);
            }
            Ok(())
        }))
        // Not strict: markup a tokenizer alone cannot place (`<select><script>`, …) is read
        // as browsers most often do instead of failing the whole message. Email has no ESI.
        .with_strict(false)
        .with_enable_esi_tags(false);
    rewrite_str(html, settings)
        .expect("handlers that never fail, no memory limit and no strict mode leave no error")
}

/// Whether a declared charset (`utf-8`, `UTF8`, `"utf-8"; …`) is UTF-8.
fn is_utf8(charset: &str) -> bool {
    let name = charset
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .split([';', ' ', '"', '\''])
        .next()
        .unwrap_or_default();
    name.eq_ignore_ascii_case("utf-8") || name.eq_ignore_ascii_case("utf8")
}

/// What goes before `</body>`: the pixel, and the unsubscribe link unless the sender's
/// template already has one.
struct Footer {
    pixel: Option<String>,
    link: String,
    /// Set by the link handler on an `href` equal to the unsubscribe URL.
    has_unsubscribe: Cell<bool>,
    /// Set when the footer has been written, at `</body>` or the end of the document.
    placed: Cell<bool>,
}

impl Footer {
    fn html(&self) -> String {
        let mut html = self.pixel.clone().unwrap_or_default();
        if !self.has_unsubscribe.get() {
            html.push_str(&self.link);
        }
        html
    }
}

/// Points `el`'s `href` at the click redirect of link `index`.
fn redirect(
    el: &mut Element<'_, '_>,
    tracking: &Tracking,
    tokens: &TokenKey,
    email_id: &str,
    index: usize,
) -> lol_html::HandlerResult {
    let url = click_url(tracking, tokens, email_id, index);
    el.set_attribute("href", &htmlize::escape_attribute(&url))?;
    Ok(())
}

/// The click redirect of link `index` of the email.
fn click_url(tracking: &Tracking, tokens: &TokenKey, email_id: &str, index: usize) -> String {
    let token = tokens
        .sign(Purpose::Click, email_id, Some(click_index(index)))
        .expect("email ids are UUIDs");
    format!("{}/c/{token}", tracking.base_url)
}

/// The index a click token carries: past the last one, links share it.
fn click_index(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX)
}

/// The URL a browser follows for an `href` as written: character references decoded as in
/// an attribute (every named reference of the HTML standard, numeric ones), then what the
/// URL parser drops first (leading and trailing spaces and controls, every tab and line
/// break). This is the target stored, so the redirect leads exactly where the link did.
fn target(raw: &str) -> String {
    htmlize::unescape_attribute(raw)
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// The text part as sent: with click tracking on, each http(s) URL in it rewritten to a
/// redirect (a URL the HTML part also links to shares that link's index); then the
/// unsubscribe link at the end, unless the text has it already ([`UNSUBSCRIBE_FIELD`]).
pub fn text(
    text: &str,
    tracking: &Tracking,
    tokens: &TokenKey,
    email_id: &str,
    links: &mut Vec<String>,
) -> String {
    let unsubscribe = unsubscribe_url(tracking, tokens, email_id);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    if tracking.clicks {
        for url in crate::text_links::find(text) {
            let target = &text[url.clone()];
            if target == unsubscribe {
                continue;
            }
            let index = links.iter().position(|l| l == target).unwrap_or_else(|| {
                links.push(target.to_owned());
                links.len() - 1
            });
            out.push_str(&text[pos..url.start]);
            out.push_str(&click_url(tracking, tokens, email_id, index));
            pos = url.end;
        }
    }
    out.push_str(&text[pos..]);
    if !text.contains(&unsubscribe) {
        out.push_str(&format!("\r\n\r\n--\r\nUnsubscribe: {unsubscribe}\r\n"));
    }
    out
}

/// Whether `url` is an absolute `http:` or `https:` link: the only ones tracked, and the only
/// ones the click redirect serves (never `javascript:`, `data:`, `mailto:`, …).
pub fn is_web_link(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    })
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

    fn html(html: &str, tracking: &Tracking, tokens: &TokenKey) -> (String, Vec<String>) {
        let mut links = Vec::new();
        let out = super::html(html, tracking, tokens, ID, &mut links);
        (out, links)
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
        let (out, links) = self::html(&html, &tracking(false, true), &tokens);
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
        let (out, links) = self::html(html, &tracking(false, false), &tokens);
        assert!(links.is_empty());
        assert!(out.starts_with(html));
        let unsubscribe = unsubscribe_url(&tracking(false, false), &tokens, ID);
        assert!(out.contains(&unsubscribe));
        let text = text(
            "Hi https://shop.example/",
            &tracking(false, false),
            &tokens,
            ID,
            &mut Vec::new(),
        );
        assert!(text.starts_with("Hi https://shop.example/\r\n"), "{text}");
        assert!(text.contains(&unsubscribe));
    }

    #[test]
    fn the_pixel_goes_before_the_end_of_the_body() {
        let tokens = TokenKey::new(b"k");
        let token = tokens.sign(Purpose::Open, ID, None).unwrap();
        let pixel = format!("https://t.example/o/{token}.gif");
        for (html, before) in [
            ("<body>Hi</BODY>", Some("</BODY>")),
            (
                "<html><body>Hi</body><!-- </body> --></html>",
                Some("</body><!--"),
            ),
            ("<p>Hi</p>", None),
        ] {
            let (out, _) = self::html(html, &tracking(true, false), &tokens);
            assert_eq!(out.matches(&pixel).count(), 1, "{out}");
            match before {
                Some(end) => assert!(out.find(&pixel) < out.find(end), "{out}"),
                None => assert!(out.starts_with(html), "{out}"),
            }
        }
    }

    #[test]
    fn the_senders_own_unsubscribe_link_is_kept_and_not_doubled() {
        let tokens = TokenKey::new(b"k");
        let url = unsubscribe_url(&tracking(true, true), &tokens, ID);
        let html = format!("<body><p><a href=\"{url}\">Leave this list</a></p></body>");
        let (out, links) = self::html(&html, &tracking(true, true), &tokens);
        assert!(
            links.is_empty(),
            "the unsubscribe link is never a click: {links:?}"
        );
        assert_eq!(out.matches(&url).count(), 1, "{out}");
        assert!(!out.contains(">Unsubscribe<"), "{out}");
        let text = text(
            &format!("Leave: {url}"),
            &tracking(true, true),
            &tokens,
            ID,
            &mut Vec::new(),
        );
        assert_eq!(text, format!("Leave: {url}"));
    }

    #[test]
    fn text_links_are_rewritten_only_with_click_tracking_on() {
        let tokens = TokenKey::new(b"k");
        let mut links = vec!["https://shop.example/a".to_owned()];
        let out = text(
            "See https://shop.example/a, and (https://shop.example/b).",
            &tracking(false, true),
            &tokens,
            ID,
            &mut links,
        );
        assert_eq!(links, ["https://shop.example/a", "https://shop.example/b"]);
        let click = |i| tokens.sign(Purpose::Click, ID, Some(i)).unwrap();
        assert!(
            out.starts_with(&format!(
                "See https://t.example/c/{}, and (https://t.example/c/{}).",
                click(0),
                click(1)
            )),
            "{out}"
        );
    }

    #[test]
    fn only_the_unsubscribe_placeholder_is_filled_in_and_other_braces_stay() {
        let url = "https://t.example/u/a?b=1&c=2";
        for (body, html, filled) in [
            (
                "Hi {{first_name}}, leave: {{ unsubscribe_url }}",
                false,
                "Hi {{first_name}}, leave: https://t.example/u/a?b=1&c=2",
            ),
            (
                "<a href=\"{{unsubscribe_url}}\">x</a>",
                true,
                "<a href=\"https://t.example/u/a?b=1&amp;c=2\">x</a>",
            ),
            ("{{unsubscribe_url", false, "{{unsubscribe_url"),
            ("no placeholder {{ }}", false, "no placeholder {{ }}"),
        ] {
            assert_eq!(fill_unsubscribe(body, url, html), filled, "{body}");
        }
        assert!(matches!(
            fill_unsubscribe("{{x}}", url, false),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn a_meta_declaring_another_charset_is_made_utf8() {
        let tokens = TokenKey::new(b"k");
        for (head, wanted) in [
            ("<meta charset=\"ISO-8859-1\">", "<meta charset=\"utf-8\">"),
            ("<meta charset=\"UTF-8\">", "<meta charset=\"UTF-8\">"),
            (
                "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1252\">",
                "<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">",
            ),
            (
                "<meta http-equiv=\"refresh\" content=\"5; charset=latin1\">",
                "<meta http-equiv=\"refresh\" content=\"5; charset=latin1\">",
            ),
        ] {
            let (out, _) = self::html(
                &format!("<head>{head}</head><body>Hi</body>"),
                &tracking(false, false),
                &tokens,
            );
            assert!(out.starts_with(&format!("<head>{wanted}</head>")), "{out}");
        }
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
        let (out, links) = self::html(html, &tracking(false, true), &tokens);
        assert!(links.is_empty(), "{links:?}");
        assert!(out.starts_with(html), "{out}");
    }

    #[test]
    fn targets_are_what_a_browser_follows() {
        for (raw, followed) in [
            (
                "https://a.example/?x=1&amp;y=2",
                "https://a.example/?x=1&y=2",
            ),
            (
                "https://a.example/&#38;&#x26;&quot;&lt;",
                "https://a.example/&&\"<",
            ),
            ("https://a.example/caf&eacute;", "https://a.example/café"),
            // In an attribute a reference without `;` before `=` or a letter is text.
            (
                "https://a.example/?a=1&copy=2",
                "https://a.example/?a=1&copy=2",
            ),
            ("https://a.example/&unknown;", "https://a.example/&unknown;"),
            ("  https://a.example/\n  ", "https://a.example/"),
            ("https://a.exa\tmple/p\r\nq", "https://a.example/pq"),
        ] {
            assert_eq!(target(raw), followed, "{raw}");
        }
    }
}
