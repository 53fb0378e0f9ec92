//! A small blocking HTTP/1.1 client for the signaling side of a load run (WHIP, WHEP, Janus's
//! HTTP API). Setup is not measured, so one connection per request (`Connection: close`) and a
//! plain `TcpStream` are enough; it understands `Content-Length`, chunked and read-to-close
//! bodies.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long one request may take before the run gives up on the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A response: status, headers (names lowercase) and body text.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// `http://host:port` split from a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port`.
    pub authority: String,
    /// The path and query, starting with `/`.
    pub path: String,
}

impl HttpUrl {
    /// Parses an `http://` URL (no TLS: the servers under test are on loopback).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("{url}: no host");
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpUrl {
            authority,
            path: path.to_owned(),
        })
    }

    /// The URL of `location` (absolute, or a path on this server) as a `Location` header
    /// gives it.
    pub fn join(&self, location: &str) -> anyhow::Result<HttpUrl> {
        if location.starts_with("http://") {
            HttpUrl::parse(location)
        } else if location.starts_with('/') {
            Ok(HttpUrl {
                authority: self.authority.clone(),
                path: location.to_owned(),
            })
        } else {
            bail!("unsupported Location {location:?}")
        }
    }
}

impl std::fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &HttpUrl,
    content_type: Option<&str>,
    body: &str,
) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect(&url.authority)
        .with_context(|| format!("connecting to {}", url.authority))?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.path,
        url.authority,
        body.len()
    );
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::with_capacity(8 * 1024);
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("reading the response to {method} {url}"))?;
    parse_response(&raw).with_context(|| format!("response to {method} {url}"))
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).context("headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        match headers.iter().find(|(n, _)| n == "content-length") {
            Some((_, len)) => {
                let len: usize = len.parse().context("bad Content-Length")?;
                rest.get(..len)
                    .context("body shorter than Content-Length")?
                    .to_vec()
            }
            None => rest.to_vec(),
        }
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8(body).context("body is not UTF-8")?,
    })
}

fn dechunk(mut rest: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("unterminated chunk size")?;
        let size_text = std::str::from_utf8(&rest[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).context("truncated chunk")?);
        rest = rest.get(size + 2..).context("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lengths_chunks_and_locations() {
        let r = parse_response(
            b"HTTP/1.1 201 Created\r\nLocation: /whip/a/b\r\nContent-Length: 3\r\n\r\nabcdef",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (201, "abc"));
        assert_eq!(r.header("location"), Some("/whip/a/b"));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, "abcde");
        let url = HttpUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            url.join("/whep/x").unwrap().to_string(),
            "http://127.0.0.1:8080/whep/x"
        );
    }
}
