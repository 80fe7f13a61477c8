//! Merge fields: `{{first_name}}` in a subject or body replaced by the recipient's value,
//! HTML-escaped in HTML. An unknown field becomes empty rather than leaking the placeholder.

/// Replaces every `{{ name }}` in `template` with `lookup(name)` (escaped for HTML when
/// `html`). Text without placeholders is returned unchanged.
pub fn render(template: &str, lookup: impl Fn(&str) -> Option<String>, html: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        out.push_str(&rest[..start]);
        let name = rest[start + 2..start + 2 + len].trim();
        let value = lookup(name).unwrap_or_default();
        if html {
            escape_html_into(&value, &mut out);
        } else {
            out.push_str(&value);
        }
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    out
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

    fn fields(name: &str) -> Option<String> {
        match name {
            "first_name" => Some("Ana".into()),
            "company" => Some("<script>alert(1)</script> & Co".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_known_fields_and_blanks_unknown_ones() {
        assert_eq!(render("Hi {{first_name}}!", fields, false), "Hi Ana!");
        assert_eq!(
            render("Hi {{ first_name }}, {{nope}}.", fields, false),
            "Hi Ana, ."
        );
        assert_eq!(
            render("no fields {{ here", fields, false),
            "no fields {{ here"
        );
        assert_eq!(render("", fields, false), "");
    }

    #[test]
    fn escapes_values_in_html_only() {
        assert_eq!(
            render("<p>{{company}}</p>", fields, true),
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</p>"
        );
        assert_eq!(
            render("{{company}}", fields, false),
            "<script>alert(1)</script> & Co"
        );
    }
}
