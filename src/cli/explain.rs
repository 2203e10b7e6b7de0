//! `failover-dns explain NAME [TYPE]`: the server's own `/explain` (its decision path
//! for a query), fetched from its admin endpoint and shown as text or as the JSON.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use serde_json::Value;

use crate::config::{ExplainArgs, Output};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("--admin {0:?}: expected http://HOST:PORT")]
    Url(String),
    #[error(
        "cannot reach the admin endpoint at {url}: {source} (is the server running? in a cluster, `kubectl port-forward` to its admin port and pass --admin)"
    )]
    Connect { url: String, source: std::io::Error },
    #[error("the admin endpoint at {url} answered {status}: {body}")]
    Status { url: String, status: String, body: String },
    #[error("the admin endpoint at {url} answered something that is not JSON: {message}")]
    Body { url: String, message: String },
}

/// Asks the server and prints its answer.
pub fn run(args: &ExplainArgs) -> Result<(), ExplainError> {
    let explanation = fetch(args)?;
    match args.output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&explanation).expect("JSON prints"))
        }
        Output::Text => print!("{}", render(&explanation)),
    }
    Ok(())
}

fn fetch(args: &ExplainArgs) -> Result<Value, ExplainError> {
    let url = args.admin.trim_end_matches('/');
    let authority = url.strip_prefix("http://").ok_or_else(|| ExplainError::Url(url.into()))?;
    if authority.is_empty() || authority.contains('/') {
        return Err(ExplainError::Url(url.into()));
    }
    let connect = |source| ExplainError::Connect { url: url.into(), source };
    let addr = authority
        .to_socket_addrs()
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(std::io::Error::other("no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, args.timeout).map_err(connect)?;
    stream.set_read_timeout(Some(args.timeout)).map_err(connect)?;
    stream.set_write_timeout(Some(args.timeout)).map_err(connect)?;
    let path = format!("/explain?name={}&type={}", encode(&args.name), encode(&args.rtype));
    // HTTP/1.0: the body ends with the connection, never chunked.
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: application/json\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(connect)?;
    let mut response = Vec::new();
    stream.take(16 << 20).read_to_end(&mut response).map_err(connect)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line.split_once(' ').map_or("", |(_, rest)| rest).to_owned();
    if !status.starts_with("200") {
        return Err(ExplainError::Status { url: url.into(), status, body: body.trim().into() });
    }
    serde_json::from_str(body)
        .map_err(|e| ExplainError::Body { url: url.into(), message: e.to_string() })
}

/// Percent-encodes a query value (names are letters, digits, `-`, `.`, `_`, `*`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The explanation for a reader: the answer first, then each decision with its
/// candidates, then the health checks it rests on.
pub fn render(e: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let zone = match text(&e["zone"]) {
        z if z.is_empty() => "outside every served zone".to_owned(),
        z => format!("zone {z}"),
    };
    line(
        &mut out,
        format!(
            "{} {} ({zone}, serial {})",
            text(&e["name"]),
            text(&e["type"]),
            text(&e["serial"])
        ),
    );
    line(&mut out, format!("answer: {}: {}", text(&e["rcode"]), text(&e["summary"])));
    for rr in e["exampleAnswer"].as_array().into_iter().flatten() {
        line(
            &mut out,
            format!(
                "  {} {} {} {}",
                text(&rr["name"]),
                text(&rr["ttl"]),
                text(&rr["type"]),
                text(&rr["value"])
            ),
        );
    }
    for d in e["decisions"].as_array().into_iter().flatten() {
        line(&mut out, String::new());
        line(&mut out, format!("{} {}: {}", text(&d["name"]), text(&d["type"]), text(&d["rule"])));
        for c in d["candidates"].as_array().into_iter().flatten() {
            let role = [&c["failover"], &c["weight"]]
                .into_iter()
                .find(|v| !v.is_null())
                .map(|v| match v {
                    Value::Number(n) => format!("weight {n}"),
                    other => text(other),
                })
                .unwrap_or_default();
            let share =
                c["probability"].as_f64().map_or(String::new(), |p| format!("{:.0}%", p * 100.0));
            let data = match c["values"].as_array() {
                Some(values) => values.iter().map(text).collect::<Vec<_>>().join(", "),
                None => text(&c["alias"]),
            };
            let health = if c["healthy"] == true { "healthy" } else { "unhealthy" };
            line(
                &mut out,
                format!(
                    "  {:<9} {:>4}  {} (set {}{}): {data}",
                    text(&c["selection"]),
                    share,
                    text(&c["record"]),
                    text(&c["setIdentifier"]),
                    if role.is_empty() { String::new() } else { format!(", {role}") },
                ),
            );
            line(&mut out, format!("            {health}: {}", text(&c["health"])));
        }
    }
    let checks = e["checks"].as_array().map_or(&[][..], Vec::as_slice);
    if !checks.is_empty() {
        line(&mut out, String::new());
        line(&mut out, "health checks:".into());
    }
    for c in checks {
        let verdict = if c["healthy"] == true { "healthy" } else { "unhealthy" };
        line(
            &mut out,
            format!(
                "  {}/{}: {verdict}, {}: {}",
                text(&c["namespace"]),
                text(&c["name"]),
                text(&c["reason"]),
                text(&c["message"])
            ),
        );
        for checker in c["checkers"].as_array().into_iter().flatten() {
            line(
                &mut out,
                format!("    checker {}: {}", text(&checker["name"]), text(&checker["reason"])),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("www.example.test"), "www.example.test");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
    }
}
