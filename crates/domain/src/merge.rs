//! Merge templates: a subject or body written in Jinja's syntax (minijinja), rendered with the
//! recipient's fields. `{{ first_name }}` is the field's value, `{{ first_name |
//! default("there") }}` a fallback when it is missing or empty, `{% if company %}…{% endif %}`
//! a conditional; an unknown field renders empty. A template without `{{`, `{%` or `{#` is
//! text and costs nothing to render.
//!
//! Merge values come from outside (API `fields`, a lead's name, a CSV import) and may hold
//! anything, CR LF included; where the value lands decides what it may contain
//! ([`Context`]). Every value a template writes passes through that rule, whatever
//! expression or filter produced it: in a header it can never end the line (a value that
//! could would write headers, or a whole new body, into mail signed for the customer's
//! domain), and in HTML it is escaped unless the template marks it `| safe` itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

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
    /// `<img src=x onerror=…>` is text. A value the template itself marks `| safe` is
    /// written as HTML (still without control characters).
    Html,
}

/// Why a template cannot be rendered: its syntax, an unknown filter, test or function, or
/// more work than one render may do ([`FUEL`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

impl From<minijinja::Error> for TemplateError {
    /// The error without the template's name (an internal one) but with its line.
    fn from(e: minijinja::Error) -> Self {
        let mut text = e.kind().to_string();
        if let Some(detail) = e.detail() {
            let _ = write!(text, ": {detail}");
        }
        if let Some(line) = e.line() {
            let _ = write!(text, " (line {line})");
        }
        TemplateError(text)
    }
}

/// Instructions one render may run: far more than any email template needs, few enough
/// that a template looping over `range(…)` cannot hold a delivery worker.
const FUEL: u64 = 100_000;

/// Compiled templates one thread keeps per context, and their text's size in all: past
/// either, it starts over (a batch's emails come together, so its template stays).
const CACHED_TEMPLATES: usize = 256;
const CACHED_BYTES: usize = 8 << 20;

/// Whether `template` is plain text to minijinja: nothing in it is a tag or a comment.
fn is_plain(template: &str) -> bool {
    !(template.contains("{{") || template.contains("{%") || template.contains("{#"))
}

/// The environment templates for `context` are compiled in: values written through
/// [`write_value`], undefined names (and their attributes) empty, the template's own
/// trailing newline kept.
fn environment(context: Context) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    // Escaping is the formatter's, by context; minijinja's own would escape twice.
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_formatter(move |out, _, value| write_value(value, context, out));
    env
}

/// Writes a value the template outputs, made safe for `context`.
fn write_value(
    value: &Value,
    context: Context,
    out: &mut minijinja::Output,
) -> Result<(), minijinja::Error> {
    let text = if value.is_undefined() || value.is_none() {
        String::new()
    } else {
        value.to_string()
    };
    let mut safe = String::with_capacity(text.len());
    match context {
        Context::Header => one_line_into(&text, &mut safe),
        Context::Text => text_into(&text, &mut safe),
        Context::Html if value.is_safe() => text_into(&text, &mut safe),
        Context::Html => escape_html_into(&self::text(&text), &mut safe),
    }
    out.write_str(&safe).map_err(minijinja::Error::from)
}

/// A compiled template: its name in the environment and the names it reads.
struct Compiled {
    name: String,
    names: Rc<[String]>,
}

/// One context's compiled templates, by their text.
struct Slot {
    env: Environment<'static>,
    compiled: Vec<Compiled>,
    by_text: HashMap<String, usize>,
    bytes: usize,
}

impl Slot {
    fn new(context: Context) -> Self {
        Slot {
            env: environment(context),
            compiled: Vec::new(),
            by_text: HashMap::new(),
            bytes: 0,
        }
    }

    /// `template`'s place in [`Slot::compiled`], compiling it first if this thread has not.
    fn compile(&mut self, template: &str) -> Result<usize, TemplateError> {
        if let Some(&at) = self.by_text.get(template) {
            return Ok(at);
        }
        if self.compiled.len() >= CACHED_TEMPLATES || self.bytes + template.len() > CACHED_BYTES {
            self.env.clear_templates();
            self.compiled.clear();
            self.by_text.clear();
            self.bytes = 0;
        }
        let name = format!("t{}", self.compiled.len());
        self.env
            .add_template_owned(name.clone(), template.to_owned())?;
        let mut names: Vec<String> = self
            .env
            .get_template(&name)?
            .undeclared_variables(false)
            .into_iter()
            .collect();
        names.sort();
        self.compiled.push(Compiled {
            name,
            names: names.into(),
        });
        self.by_text
            .insert(template.to_owned(), self.compiled.len() - 1);
        self.bytes += template.len();
        Ok(self.compiled.len() - 1)
    }
}

thread_local! {
    /// One thread's compiled templates, by context: a batch's emails share theirs, so each
    /// is compiled once per thread, not per email.
    static CACHE: RefCell<[Slot; 3]> = RefCell::new(
        [Slot::new(Context::Header), Slot::new(Context::Text), Slot::new(Context::Html)],
    );
}

impl Context {
    fn slot(self) -> usize {
        match self {
            Context::Header => 0,
            Context::Text => 1,
            Context::Html => 2,
        }
    }
}

/// Renders `template` with `lookup(name)` for each field it reads, every value written made
/// safe for `context`. A field that is missing or empty is undefined: it renders empty and
/// takes a `default(…)`. The template's own text is the sender's and is kept as written (the
/// subject's is checked to be one line when it is submitted); text without tags is returned
/// unchanged.
pub fn render(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
    context: Context,
) -> Result<String, TemplateError> {
    if is_plain(template) {
        return Ok(template.to_owned());
    }
    let (at, names) = CACHE.with(|cache| {
        let slot = &mut cache.borrow_mut()[context.slot()];
        let at = slot.compile(template)?;
        Ok::<_, TemplateError>((at, slot.compiled[at].names.clone()))
    })?;
    // `lookup` runs with the cache released: it is the caller's code.
    let values = Value::from_iter(names.iter().filter_map(|name| {
        let value = lookup(name).filter(|v| !v.is_empty())?;
        Some((name.clone(), Value::from(value)))
    }));
    CACHE.with(|cache| {
        let slot = &cache.borrow()[context.slot()];
        Ok(slot
            .env
            .get_template(&slot.compiled[at].name)?
            .render(values)?)
    })
}

/// Checks a template when it is submitted, so that a mistake is the sender's 422 instead of
/// every email failing: its syntax, and the filters, tests and functions it names on the
/// paths an empty recipient takes.
pub fn check(template: &str) -> Result<(), TemplateError> {
    if is_plain(template) {
        return Ok(());
    }
    let env = environment(Context::Text);
    match env.render_str(template, ()) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::SyntaxError
                    | ErrorKind::UnknownFilter
                    | ErrorKind::UnknownTest
                    | ErrorKind::UnknownFunction
                    | ErrorKind::UnknownMethod
                    | ErrorKind::OutOfFuel
            ) =>
        {
            Err(e.into())
        }
        // What depends on the recipient's values (arithmetic on a missing field, say) is
        // for delivery to find.
        Err(_) => Ok(()),
    }
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
            "blank" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(template: &str, context: Context) -> String {
        render(template, fields, context).unwrap_or_else(|e| panic!("{template:?}: {e}"))
    }

    #[test]
    fn replaces_known_fields_and_blanks_unknown_ones() {
        for context in [Context::Header, Context::Text, Context::Html] {
            assert_eq!(ok("Hi {{first_name}}!", context), "Hi Ana!");
            assert_eq!(ok("Hi {{ first_name }}, {{nope}}.", context), "Hi Ana, .");
            assert_eq!(ok("{{ nope.deeper }}|{{ none }}", context), "|");
            assert_eq!(ok("", context), "");
            // No tag: the text as it is, braces and all.
            assert_eq!(ok("50% off {today} }} {", context), "50% off {today} }} {");
        }
    }

    #[test]
    fn defaults_and_conditionals_read_the_fields() {
        let cases = [
            ("Hi {{ first_name | default(\"there\") }}", "Hi Ana"),
            ("Hi {{ nope | default(\"there\") }}", "Hi there"),
            // An empty value is a missing one: the default applies.
            ("Hi {{ blank | default(\"there\") }}", "Hi there"),
            (
                "{% if first_name %}Hi {{ first_name }}{% else %}Hello{% endif %}",
                "Hi Ana",
            ),
            (
                "{% if nope %}Hi {{ nope }}{% else %}Hello{% endif %}",
                "Hello",
            ),
            ("{{ first_name | upper }}{# a comment #}", "ANA"),
            ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
        ];
        for (template, expected) in cases {
            assert_eq!(ok(template, Context::Text), expected, "{template:?}");
        }
        // The template's own line breaks, the last one included, are the sender's.
        assert_eq!(
            ok("Hi {{ first_name }},\r\n\r\nbye\r\n", Context::Text),
            "Hi Ana,\r\n\r\nbye\r\n"
        );
        // A plain template is returned as it is.
        assert_eq!(ok("plain\r\n", Context::Text), "plain\r\n");
    }

    #[test]
    fn html_escapes_what_a_template_writes_unless_it_says_safe() {
        assert_eq!(
            ok(
                "{% if company %}<b>{{ company }}</b>{% endif %}",
                Context::Html
            ),
            "<b>&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co</b>"
        );
        // An expression's result is escaped too, once.
        assert_eq!(
            ok("{{ company | lower }}|{{ company | e }}", Context::Html),
            "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co|\
             &lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co"
        );
        assert_eq!(
            ok("{{ \"<i>\" ~ first_name ~ \"</i>\" }}", Context::Html),
            "&lt;i&gt;Ana&lt;/i&gt;"
        );
        // The sender's own choice: HTML they mark safe, still without control characters.
        assert_eq!(
            ok("{{ \"<i>\\x00x</i>\" | safe }}", Context::Html),
            "<i>x</i>"
        );
    }

    #[test]
    fn no_expression_or_filter_writes_a_line_break_into_a_header() {
        for template in [
            "{{ injection }}",
            "{{ injection | safe }}",
            "{{ injection | upper }}",
            "{{ \"a\\r\\nBcc: x@evil.example\" }}",
            "{{ [injection, lines] | join(\"\\n\") }}",
            "{% for l in lines | lines %}{{ l }}\\n{% endfor %}",
            "{{ nope | default(injection) }}",
        ] {
            let line = ok(template, Context::Header);
            assert!(
                !line.chars().any(breaks_header),
                "{template:?} gave {line:?}"
            );
        }
    }

    #[test]
    fn more_templates_than_one_thread_keeps_still_render_each_its_own() {
        for round in 0..2 {
            for i in 0..CACHED_TEMPLATES + 10 {
                let template = format!("{i}: {{{{ first_name }}}}");
                assert_eq!(ok(&template, Context::Text), format!("{i}: Ana"), "{round}");
            }
        }
        let big = format!("{}{{{{ first_name }}}}", "x".repeat(CACHED_BYTES));
        assert!(ok(&big, Context::Text).ends_with("xAna"));
        assert_eq!(ok("0: {{ first_name }}", Context::Text), "0: Ana");
    }

    #[test]
    fn a_template_that_cannot_render_says_why_and_where() {
        for (template, says) in [
            ("Hi {{ first_name", "syntax error"),
            ("{% if first_name %}Hi", "syntax error"),
            ("{{ first_name | defualt(\"x\") }}", "unknown filter"),
            ("{% include \"other\" %}", "syntax error"),
            ("{% for i in range(100000) %}{% endfor %}", "fuel"),
        ] {
            let checked = check(template).expect_err(template).to_string();
            assert!(checked.contains(says), "{template:?}: {checked}");
            assert!(checked.contains("line 1"), "{template:?}: {checked}");
            let rendered = render(template, fields, Context::Text).expect_err(template);
            assert!(
                rendered.to_string().contains(says),
                "{template:?}: {rendered}"
            );
        }
        // What depends on a recipient's values is not refused up front.
        assert_eq!(check("{{ nope + 1 }}"), Ok(()));
        assert_eq!(check("no tags {here}"), Ok(()));
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
                ok(template, context),
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
