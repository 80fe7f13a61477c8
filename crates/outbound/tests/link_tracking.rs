//! Click tracking on hostile and real-world HTML (issue 18): every link a browser would
//! follow (an `<a>` or `<area>` whose `href` is an absolute http(s) URL) is rewritten exactly
//! once, its stored target is the URL the browser would have followed, and nothing else in
//! the document changes. "Changes" is judged by an independent parser, html5ever (through
//! `scraper`), reading the document before and after: the same nodes in the same order, the
//! same attributes, but for the rewritten hrefs and the footer tracking adds.

use std::collections::BTreeMap;

use mailtrail_domain::token::{Purpose, TokenKey};
use mailtrail_outbound::message::build;
use mailtrail_outbound::tracking::{self, Tracking};
use mailtrail_store::{Claimed, Content};
use scraper::{Html, Node};

const ID: &str = "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b";

fn tracking() -> Tracking {
    Tracking {
        base_url: "https://t.example".into(),
        opens: true,
        clicks: true,
    }
}

/// The hand-written newsletter templates, in the style of the common email frameworks
/// (nested tables, Outlook conditional comments and VML buttons, a preheader, srcset images).
const NEWSLETTER: &str = include_str!("fixtures/newsletter.html");
const RECEIPT: &str = include_str!("fixtures/receipt.html");

/// `(name, html, links a browser would follow)`.
fn cases(unsubscribe: &str) -> Vec<(&'static str, String, usize)> {
    let block = "<tr><td><a href=\"https://shop.example/p?id=1&amp;utm_source=mail\">\
                 <img src=\"https://cdn.example/p.png\" srcset=\"https://cdn.example/p@2x.png 2x\" \
                 alt=\"Item\"></a><p>Only &euro;9 &mdash; <a href=https://shop.example/buy>buy</a> \
                 href=\"https://text.example/\"</p></td></tr>\n";
    let big = format!(
        "<!doctype html><html><body><table>{}</table></body></html>",
        block.repeat(1_048_576 / block.len() + 1)
    );
    let big_links = 2 * (1_048_576 / block.len() + 1);
    vec![
        (
            "attribute containing href=",
            r#"<body><a data-x="href=https://evil.example/&quot;" href="https://shop.example/ok">A</a>
               <div title='see href="https://evil.example/"'>x</div></body>"#
                .into(),
            1,
        ),
        (
            "visible text containing href=",
            "<body><p>Write href=\"https://x.example/\" in your code, or href=https://y.example/.</p></body>".into(),
            0,
        ),
        (
            "stylesheet, base, preload and canonical links",
            r#"<html><head><base href="https://shop.example/">
               <link rel=stylesheet href="https://fonts.example/css?family=Inter">
               <link rel="canonical" href="https://shop.example/news"></head>
               <body><a href="/relative">R</a><a href="https://shop.example/abs">A</a></body></html>"#
                .into(),
            1,
        ),
        (
            "comments and Outlook conditional comments",
            r#"<body><!-- <a href="https://old.example/">old</a> -->
               <!--[if mso]><v:roundrect href="https://shop.example/vml" arcsize="10%"><w:anchorlock/><center>Buy</center></v:roundrect><![endif]-->
               <!--[if !mso]><!--><a href="https://shop.example/button" class="btn">Buy</a><!--<![endif]-->
               </body>"#
                .into(),
            1,
        ),
        (
            "upper case, unquoted and spaced attributes",
            r#"<BODY><A HREF="https://a.example/1">1</A><a href=https://a.example/2?x=1&amp;y=2>2</a>
               <a href = "https://a.example/3" >3</a><a	href
               ='https://a.example/4'>4</a><AREA SHAPE=rect COORDS="0,0,1,1" HREF="https://a.example/5"></BODY>"#
                .into(),
            5,
        ),
        (
            "entities in hrefs",
            "<body><a href=\"https://a.example/?q=caf&eacute;&amp;r=&#49;&#x32;\">e</a>\
             <a href=\"https://a.example/&quot;q&quot;\">q</a>\
             <a href=\"https://a.example/?a=1&copy=2&notin;\">c</a>\
             <a href=\"&#104;ttps://a.example/numeric-scheme\">n</a></body>"
                .into(),
            4,
        ),
        (
            "links that are not web links",
            "<body><a href=\"javascript:alert(1)\">j</a><a href=\"&#106;avascript:alert(1)\">j2</a>\
             <a href=\"data:text/html,<b>x</b>\">d</a><a href=\"mailto:a@b.example\">m</a>\
             <a href=\"tel:+123\">t</a><a href=\"#top\">a</a><a href=\"\">e</a><a>none</a>\
             <a data-notrack href=\"https://keep.example/\">k</a>\
             <img src=\"https://cdn.example/x.png\" srcset=\"https://cdn.example/x.png 1x, https://cdn.example/y.png 2x\"></body>"
                .into(),
            0,
        ),
        (
            "whitespace and line breaks in a URL",
            "<body><a href=\"  https://a.example/p\n?q=1 \">w</a></body>".into(),
            1,
        ),
        (
            "raw text elements",
            r#"<html><head><style>a[href="https://css.example/"]{color:red}</style>
               <script>document.write('<a href="https://js.example/">x</a>')</script>
               <title><a href="https://title.example/">t</a></title></head>
               <body><textarea><a href="https://ta.example/">x</a></textarea><a href="https://real.example/">r</a></body></html>"#
                .into(),
            1,
        ),
        (
            "the sender's own unsubscribe link",
            format!("<body><p><a href=\"{unsubscribe}\">Leave this list</a> <a href=\"https://shop.example/\">Shop</a></p></body>"),
            1,
        ),
        ("no body end tag", "<p>Hi <a href=\"https://a.example/\">there</a>".into(), 1),
        ("newsletter template", NEWSLETTER.into(), 7),
        ("receipt template", RECEIPT.into(), 6),
        ("1 MB document", big, big_links),
    ]
}

/// What tracking adds before `</body>` for this email and settings.
fn footer(tokens: &TokenKey, with_link: bool) -> String {
    let open = tokens.sign(Purpose::Open, ID, None).unwrap();
    let mut footer = format!(
        "<img src=\"https://t.example/o/{open}.gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:none\">"
    );
    if with_link {
        let unsubscribe = tracking::unsubscribe_url(&tracking(), tokens, ID);
        footer.push_str(&format!(
            "<p style=\"font-size:12px;color:#666\"><a href=\"{unsubscribe}\">Unsubscribe</a></p>"
        ));
    }
    footer
}

/// A node as the parser sees it; an element's attributes sorted by name.
#[derive(Debug, PartialEq)]
enum Seen {
    Element(String, BTreeMap<String, String>),
    Text(String),
    Comment(String),
    Other,
}

fn nodes(html: &str) -> Vec<Seen> {
    Html::parse_document(html)
        .tree
        .root()
        .descendants()
        .map(|node| match node.value() {
            Node::Element(el) => Seen::Element(
                format!("{:?}:{}", el.name.ns, el.name()),
                el.attrs()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            ),
            Node::Text(text) => Seen::Text(text.to_string()),
            Node::Comment(comment) => Seen::Comment(comment.to_string()),
            _ => Seen::Other,
        })
        .collect()
}

/// The URL a browser follows for an `href` as the parser decoded it (WHATWG URL parsing
/// strips leading and trailing spaces and controls and drops every tab and line break).
fn followed(href: &str) -> String {
    href.trim_matches(|c: char| c <= ' ')
        .replace(['\t', '\n', '\r'], "")
}

fn is_followed_web_link(seen: &Seen, unsubscribe: &str) -> Option<String> {
    let Seen::Element(name, attrs) = seen else {
        return None;
    };
    let html = name.ends_with(":a") || name.ends_with(":area");
    let url = followed(attrs.get("href")?);
    let web = url.to_ascii_lowercase().starts_with("http://")
        || url.to_ascii_lowercase().starts_with("https://");
    (html && web && !attrs.contains_key("data-notrack") && url != unsubscribe).then_some(url)
}

#[test]
fn every_followed_link_is_tracked_once_and_nothing_else_changes() {
    let tokens = TokenKey::new(b"k");
    let unsubscribe = tracking::unsubscribe_url(&tracking(), &tokens, ID);
    for (name, html, expected) in cases(&unsubscribe) {
        let mut links = Vec::new();
        let out = tracking::html(&html, &tracking(), &tokens, ID, &mut links);
        check(name, &html, &out, &links, expected);
    }
}

/// Checks the rewrite of `html` to `out` with `links` stored, `expected` links followed.
fn check(name: &str, html: &str, out: &str, links: &[String], expected: usize) {
    let tokens = TokenKey::new(b"k");
    let unsubscribe = tracking::unsubscribe_url(&tracking(), &tokens, ID);
    let footer = footer(&tokens, !html.contains(&unsubscribe));
    assert_eq!(out.matches(&footer).count(), 1, "{name}: the footer once");
    if html.to_ascii_lowercase().contains("</body>") {
        assert_eq!(
            out.find(&footer).unwrap() + footer.len(),
            out.to_ascii_lowercase().find("</body>").unwrap(),
            "{name}: the footer goes right before </body>"
        );
    } else {
        assert!(
            out.ends_with(&footer),
            "{name}: without </body> it ends the document"
        );
    }

    let before = nodes(html);
    let after = nodes(&out.replacen(&footer, "", 1));
    assert_eq!(before.len(), after.len(), "{name}: the same nodes");
    let mut tracked = 0;
    for (b, a) in before.iter().zip(&after) {
        match is_followed_web_link(b, &unsubscribe) {
            Some(url) => {
                let (Seen::Element(_, b_attrs), Seen::Element(_, a_attrs)) = (b, a) else {
                    unreachable!("{name}: an element stays an element");
                };
                let token = tokens.sign(Purpose::Click, ID, Some(tracked)).unwrap();
                assert_eq!(
                    a_attrs["href"],
                    format!("https://t.example/c/{token}"),
                    "{name}: link {tracked} redirects"
                );
                assert_eq!(
                    links[usize::from(tracked)],
                    url,
                    "{name}: link {tracked}'s target"
                );
                let mut b_rest = b_attrs.clone();
                let mut a_rest = a_attrs.clone();
                b_rest.remove("href");
                a_rest.remove("href");
                assert_eq!(b_rest, a_rest, "{name}: only the href changes");
                tracked += 1;
            }
            None => assert_eq!(b, a, "{name}: untouched"),
        }
    }
    assert_eq!(
        usize::from(tracked),
        expected,
        "{name}: links a browser follows"
    );
    assert_eq!(links.len(), expected, "{name}: one stored target per link");
}

#[test]
fn rewritten_hrefs_are_encoded_for_the_attribute() {
    let tokens = TokenKey::new(b"k");
    let tracking = Tracking {
        base_url: "https://t.example/r?a=1&b=2".into(),
        ..tracking()
    };
    let mut links = Vec::new();
    let out = tracking::html(
        "<body><a href=https://a.example/>a</a></body>",
        &tracking,
        &tokens,
        ID,
        &mut links,
    );
    assert!(
        out.contains("href=\"https://t.example/r?a=1&amp;b=2/c/"),
        "{out}"
    );
    let doc = Html::parse_document(&out);
    let a = doc
        .select(&scraper::Selector::parse("a").unwrap())
        .next()
        .unwrap();
    assert!(
        a.value()
            .attr("href")
            .unwrap()
            .starts_with("https://t.example/r?a=1&b=2/c/")
    );
}

fn email(text: &str, html: &str) -> Claimed {
    Claimed {
        id: ID.into(),
        account_id: "acct".into(),
        lead_id: None,
        to: "ana@example.com".into(),
        to_domain: "example.com".into(),
        header_to: None,
        fields: [(
            "unsubscribe_url".to_owned(),
            "https://evil.example/".to_owned(),
        )]
        .into(),
        content_id: "content".into(),
        attachment_count: 0,
        content: Content {
            from: "news@shop.example".into(),
            subject: "News".into(),
            text: Some(text.into()),
            html: Some(html.into()),
            ..Content::default()
        },
        batch: None,
        attempts: 0,
        soft_5xx_attempts: 0,
        first_soft_5xx_at_ms: None,
        created_at_ms: 1_700_000_000_000,
        send_at_ms: None,
    }
}

fn parts(bytes: &[u8]) -> (String, String) {
    let message = mail_parser::MessageParser::default().parse(bytes).unwrap();
    (
        message.body_text(0).unwrap().into_owned(),
        message.body_html(0).unwrap().into_owned(),
    )
}

#[test]
fn an_unsubscribe_placeholder_in_the_senders_footer_is_the_unsubscribe_link() {
    let tokens = TokenKey::new(b"k");
    let unsubscribe = tracking::unsubscribe_url(&tracking(), &tokens, ID);
    let email = email(
        "Shop: https://shop.example/\nLeave: {{unsubscribe_url}}",
        "<body><a href=\"https://shop.example/\">Shop</a>\
         <p><a href=\"{{ unsubscribe_url }}\">Leave this list</a></p></body>",
    );
    let built = build(
        &email,
        "h",
        "b",
        "b",
        &tokens,
        &Default::default(),
        &tracking(),
    )
    .unwrap();
    let (text, html) = parts(&built.bytes);
    assert_eq!(
        built.links,
        ["https://shop.example/"],
        "the same URL shares one index"
    );
    assert_eq!(html.matches(&unsubscribe).count(), 1, "{html}");
    assert_eq!(text.matches(&unsubscribe).count(), 1, "{text}");
    assert!(!html.contains("evil") && !text.contains("evil"));
    let click = tokens.sign(Purpose::Click, ID, Some(0)).unwrap();
    assert_eq!(
        text.lines().next(),
        Some(&*format!("Shop: https://t.example/c/{click}")),
        "{text}"
    );
}

#[test]
fn without_click_tracking_no_part_is_rewritten() {
    let tokens = TokenKey::new(b"k");
    let off = Tracking {
        clicks: false,
        ..tracking()
    };
    let email = email(
        "Shop: https://shop.example/",
        "<a href=\"https://shop.example/\">Shop</a>",
    );
    let built = build(&email, "h", "b", "b", &tokens, &Default::default(), &off).unwrap();
    let (text, html) = parts(&built.bytes);
    assert!(built.links.is_empty());
    assert_eq!(
        text.lines().next(),
        Some("Shop: https://shop.example/"),
        "{text}"
    );
    assert!(
        html.starts_with("<a href=\"https://shop.example/\">Shop</a>"),
        "{html}"
    );
    let unsubscribe = tracking::unsubscribe_url(&off, &tokens, ID);
    assert!(text.contains(&unsubscribe) && html.contains(&unsubscribe));
}
