//! The web links of a text/plain part, for click tracking: there is no markup, so a link is
//! what mail programs make clickable, an `http://` or `https://` URL up to the next space,
//! without the punctuation that ends the sentence around it.

use std::ops::Range;

use crate::tracking::is_web_link;

/// Where each http(s) URL of `text` is, in order.
pub fn find(text: &str) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = next_scheme(text, from) {
        let len = text[at..]
            .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
            .unwrap_or(text.len() - at);
        let url = trim_end(&text[at..at + len]);
        if url.len() > "https://".len() {
            found.push(at..at + url.len());
        }
        from = at + len.max(1);
    }
    found
}

/// The next `http://` or `https://` at or after `from` that starts a word.
fn next_scheme(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    (from..text.len()).find(|&i| {
        matches!(bytes[i], b'h' | b'H')
            && is_web_link(&text[i..])
            && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
    })
}

/// `url` without what closes the sentence or bracket around it: trailing `.,;:!?'` and a
/// `)` or `]` that the URL itself did not open. The brackets are counted once, so a URL
/// ending in a long run of them costs no more than its length.
fn trim_end(url: &str) -> &str {
    let count = |c| url.bytes().filter(|b| *b == c).count();
    let (mut parens, mut brackets) = (
        count(b')') as isize - count(b'(') as isize,
        count(b']') as isize - count(b'[') as isize,
    );
    let mut end = url.len();
    while let Some(&last) = url.as_bytes()[..end].last() {
        match last {
            b'.' | b',' | b';' | b':' | b'!' | b'?' | b'\'' => {}
            b')' if parens > 0 => parens -= 1,
            b']' if brackets > 0 => brackets -= 1,
            _ => break,
        }
        end -= 1;
    }
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_end_where_a_mail_program_ends_them() {
        let closers = format!("https://a.example/{}", ")".repeat(100_000));
        for (text, urls) in [
            ("See https://a.example/p.", &["https://a.example/p"][..]),
            (
                "(https://a.example/wiki/X_(y)) and http://b.example/?q=1,",
                &["https://a.example/wiki/X_(y)", "http://b.example/?q=1"],
            ),
            ("<HTTPS://a.example/>\r\nnext", &["HTTPS://a.example/"]),
            ("xhttps://a.example/ https:// ftp://a.example/", &[]),
            (
                "https://a.example/ünï?ç=1 café",
                &["https://a.example/ünï?ç=1"],
            ),
            (closers.as_str(), &["https://a.example/"]),
        ] {
            let found: Vec<&str> = find(text).into_iter().map(|r| &text[r]).collect();
            assert_eq!(found, urls, "{text}");
        }
    }
}
