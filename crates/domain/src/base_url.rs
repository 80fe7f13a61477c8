//! The public base URL an account's tracking, click and unsubscribe links start with. It is
//! written into `href` attributes and the `List-Unsubscribe` header of every email, so it is
//! accepted only when no character of it could end an attribute or a header line.

/// Why a base URL was refused, in words an admin can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error("it must start with https:// or http://")]
    Scheme,
    #[error("it names no host")]
    NoHost,
    #[error("it holds {0:?}, which a URL may not hold (percent-encode it)")]
    Character(char),
    #[error("a base URL takes no query or fragment")]
    QueryOrFragment,
}

/// `url` without surrounding whitespace and trailing slashes, if it is an absolute http(s)
/// URL made only of the characters RFC 3986 allows outside quoting (no space, quote, `<`,
/// `>`, backslash or control character), with a host and without a query or fragment.
pub fn parse_base_url(url: &str) -> Result<String, BaseUrlError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(BaseUrlError::Scheme)?;
    if let Some(bad) = url.chars().find(|c| !allowed(*c)) {
        return Err(BaseUrlError::Character(bad));
    }
    if url.contains(['?', '#']) {
        return Err(BaseUrlError::QueryOrFragment);
    }
    let host = rest.split('/').next().unwrap_or_default();
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(BaseUrlError::NoHost);
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// RFC 3986's unreserved and reserved characters, and `%` for escapes.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&()*+,;=%".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_and_https_urls_are_taken_without_their_trailing_slash() {
        for (input, out) in [
            ("https://t.shop.example", "https://t.shop.example"),
            ("https://t.shop.example/", "https://t.shop.example"),
            (" http://127.0.0.1:8025/mt// ", "http://127.0.0.1:8025/mt"),
            ("https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443"),
            (
                "https://t.shop.example/a%20b",
                "https://t.shop.example/a%20b",
            ),
        ] {
            assert_eq!(parse_base_url(input).as_deref(), Ok(out), "{input}");
        }
    }

    #[test]
    fn anything_that_could_leave_an_attribute_or_a_header_is_refused() {
        use BaseUrlError::*;
        for (input, why) in [
            ("ftp://t.shop.example", Scheme),
            ("javascript:alert(1)", Scheme),
            ("//t.shop.example", Scheme),
            ("https://", NoHost),
            ("https:///path", NoHost),
            ("https://:8025", NoHost),
            ("https://t.shop.example/\"onmouseover=\"x", Character('"')),
            ("https://t.shop.example/'", Character('\'')),
            ("https://t.shop.example/><script>", Character('>')),
            ("https://t.shop.example/a b", Character(' ')),
            (
                "https://t.shop.example/\r\nBcc: x@evil.example",
                Character('\r'),
            ),
            ("https://t.shop.example\\@evil.example", Character('\\')),
            ("https://tést.example", Character('é')),
            ("https://t.shop.example/?a=1", QueryOrFragment),
            ("https://t.shop.example/#top", QueryOrFragment),
        ] {
            assert_eq!(parse_base_url(input), Err(why), "{input:?}");
        }
    }
}
