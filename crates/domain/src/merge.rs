//! Merge fields: `{{first_name}}` in a subject or body replaced by the recipient's value. An
//! unknown field becomes empty rather than leaking the placeholder.
//!
//! Merge values come from outside (API `fields`, a lead's name, a CSV import) and may hold
//! anything, CR LF included; where the value lands decides what it may contain
//! ([`Context`]). In a header it can never end the line: a value that could would write
//! headers, or a whole new body, into mail signed for the customer's domain.

/// Where a rendered template goes, which decides what a merged value may contain there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// An unstructured header (the subject): one line. Each run of characters that
    /// [`breaks_header`] becomes one space ([`one_line`]).
    Header,
    /// A text/plain body: line breaks are kept, CR LF and a bare CR become LF, TAB is kept
    /// and every other control character (NUL among them) is dropped.
    Text,
    /// An HTML body: as [`Context::Text`], then HTML-escaped, so a lead named
    /// `<img src=x onerror=…>` is text.
    Html,
}

/// Replaces every `{{ name }}` in `template` with `lookup(name)` made safe for `context`.
/// The template itself is the sender's and is kept as written (the subject's is checked
/// to be one line when it is submitted); text without placeholders is returned unchanged.
pub fn render(template: &str, lookup: impl Fn(&str) -> Option<String>, context: Context) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = rest[start + 2..start + 2 + len].trim();
        let value = lookup(name).unwrap_or_default();
        match context {
            Context::Header => one_line_into(&value, &mut out),
            Context::Text => text_into(&value, &mut out),
            Context::Html => escape_html_into(&text(&value), &mut out),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether `c` must never appear in a header value: a control character (C0 with TAB, CR
/// and LF, DEL, C1 with NEL U+0085) or a Unicode line or paragraph separator, any of which
/// a mail program may take as the end of the line.
pub fn breaks_header(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// `value` as one header line: each run of characters that [`breaks_header`] becomes one
/// space. For every outside text put in a header: merge values, and a reply's subject or
/// sender name in the forward.
pub fn one_line(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    one_line_into(value, &mut out);
    out
}

fn one_line_into(value: &str, out: &mut String) {
    let mut in_break = false;
    for c in value.chars() {
        if breaks_header(c) {
            if !in_break {
                out.push(' ');
            }
            in_break = true;
        } else {
            out.push(c);
            in_break = false;
        }
    }
}

fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    text_into(value, &mut out);
    out
}

fn text_into(value: &str, out: &mut String) {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
}

fn escape_html_into(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INJECTION: &str = "Ana\r\nFrom: ceo@bank.example\r\nTo: x@evil.example\r\n\r\nNEW BODY";

    fn fields(name: &str) -> Option<String> {
        match name {
            "first_name" => Some("Ana".into()),
            "company" => Some("<script>alert(1)</script> & Co".into()),
            "injection" => Some(INJECTION.into()),
            "controls" => Some("a\0b\x07c\x7fd\u{85}e\u{2028}f\u{2029}g\th".into()),
            "lines" => Some("one\r\ntwo\rthree\nfour\0".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_known_fields_and_blanks_unknown_ones() {
        for context in [Context::Header, Context::Text, Context::Html] {
            assert_eq!(render("Hi {{first_name}}!", fields, context), "Hi Ana!");
            assert_eq!(
                render("Hi {{ first_name }}, {{nope}}.", fields, context),
                "Hi Ana, ."
            );
            assert_eq!(
                render("no fields {{ here", fields, context),
                "no fields {{ here"
            );
            assert_eq!(render("", fields, context), "");
        }
    }

    #[test]
    fn each_context_makes_values_safe_for_where_they_land() {
        let cases = [
            (
                "Hi {{injection}}",
                Context::Header,
                "Hi Ana From: ceo@bank.example To: x@evil.example NEW BODY",
            ),
            ("{{controls}}", Context::Header, "a b c d e f g h"),
            ("{{lines}}", Context::Header, "one two three four "),
            (
                "{{company}}",
                Context::Header,
                "<script>alert(1)</script> & Co",
            ),
            (
                "Hi {{injection}}",
                Context::Text,
                "Hi Ana\nFrom: ceo@bank.example\nTo: x@evil.example\n\nNEW BODY",
            ),
            ("{{controls}}", Context::Text, "abcde\u{2028}f\u{2029}g\th"),
            ("{{lines}}", Context::Text, "one\ntwo\nthree\nfour"),
            (
                "{{company}}",
                Context::Text,
                "<script>alert(1)</script> & Co",
            ),
            (
                "<p>{{company}}</p>",
                Context::Html,
                "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</p>",
            ),
            ("{{lines}}", Context::Html, "one\ntwo\nthree\nfour"),
            // The template is the sender's own and is kept as written.
            ("a\r\n{{first_name}}", Context::Text, "a\r\nAna"),
        ];
        for (template, context, expected) in cases {
            assert_eq!(
                render(template, fields, context),
                expected,
                "{template:?} in {context:?}"
            );
        }
    }

    #[test]
    fn nothing_that_breaks_a_header_survives_one_line() {
        for c in (0..=0x10ffff_u32).filter_map(char::from_u32) {
            let line = one_line(&format!("a{c}b"));
            assert!(!line.chars().any(breaks_header), "{c:?}");
            assert!(!line.contains(['\r', '\n']), "{c:?}");
        }
    }
}
