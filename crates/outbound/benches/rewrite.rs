//! Click-tracking rewrite speed (issue 18): links rewritten per second in a 100 KB newsletter
//! (the link-tracking test's template, its content rows repeated), by the HTML rewriter the
//! product uses (`tracking::html`, lol_html) against the named baseline, the rewriter it
//! replaced. The baseline searched the text for `href=`, which is why it was replaced: it
//! rewrote stylesheets, `<base>`, comments and attribute values that merely contain `href=`.
//! It lives only here, as the yardstick, so the product carries no dead code.
//! Run: `cargo bench -p mailtrail-outbound --bench rewrite`.

use std::time::Instant;

use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_outbound::tracking::{self, NO_TRACK, Tracking, is_web_link};

const ID: &str = "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";
const TARGET_BYTES: usize = 100 * 1024;
const ROUNDS: u32 = 200;

/// A rewriter under test: the HTML as sent, and the link targets stored.
type Rewrite<'a> = &'a dyn Fn(&str) -> (String, Vec<String>);

/// A newsletter of about [`TARGET_BYTES`]: the template with its middle rows repeated.
fn newsletter() -> String {
    let template = include_str!("../tests/fixtures/newsletter.html");
    let start = template
        .find("        <tr>\n          <td class=\"stack\"")
        .expect("the content row");
    let end = template
        .find("        <tr>\n          <td id=\"details\"")
        .expect("the footer row");
    let (head, rows, tail) = (&template[..start], &template[start..end], &template[end..]);
    let copies = (TARGET_BYTES - head.len() - tail.len()) / rows.len() + 1;
    format!("{head}{}{tail}", rows.repeat(copies))
}

/// Seconds per email, and the number of links rewritten in it.
fn measure(html: &str, rewrite: impl Fn(&str) -> (String, Vec<String>)) -> (f64, usize) {
    let (_, links) = rewrite(html);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(rewrite(std::hint::black_box(html)));
    }
    let seconds = started.elapsed().as_secs_f64() / f64::from(ROUNDS);
    (seconds, links.len())
}

fn main() {
    let tokens = TokenKey::new(b"bench");
    let html = newsletter();
    println!("newsletter: {} bytes, {ROUNDS} rounds", html.len());
    println!(
        "{:<22} {:<11} {:>6} {:>11} {:>12} {:>8}",
        "rewriter", "clicks", "links", "µs / email", "links / s", "MB / s"
    );
    // With click tracking off the pass still places the pixel and the unsubscribe link.
    for clicks in [true, false] {
        let tracking = Tracking {
            base_url: "https://t.example".into(),
            opens: true,
            clicks,
        };
        let rewriters: [(&str, Rewrite); 2] = [
            ("baseline (href= scan)", &|h| {
                baseline::html(h, &tracking, &tokens, ID)
            }),
            ("lol_html", &|h| {
                let mut links = Vec::new();
                let out = tracking::html(h, &tracking, &tokens, ID, &mut links);
                (out, links)
            }),
        ];
        for (name, rewrite) in rewriters {
            let (seconds, links) = measure(&html, rewrite);
            println!(
                "{name:<22} {:<11} {links:>6} {:>11.1} {:>12.0} {:>8.1}",
                if clicks { "on" } else { "off" },
                seconds * 1e6,
                links as f64 / seconds,
                html.len() as f64 / seconds / 1e6
            );
        }
    }
}

/// The rewriter `tracking::html` replaced, as it was (its pixel and footer included), kept as
/// the benchmark's baseline.
mod baseline {
    use super::*;

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
            tracking::unsubscribe_url(tracking, tokens, email_id)
        ));
        insert_before_body_end(&mut out, &footer);
        (out, links)
    }

    fn insert_before_body_end(html: &mut String, fragment: &str) {
        match html.to_ascii_lowercase().rfind("</body>") {
            Some(at) => html.insert_str(at, fragment),
            None => html.push_str(fragment),
        }
    }

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
}
