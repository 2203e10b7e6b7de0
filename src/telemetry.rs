//! Logging setup: `RUST_LOG` filters (default: `info`, with the libraries' own
//! per-request chatter at `warn`), text or JSON lines on stderr. Text is coloured
//! only when stderr is a terminal and `NO_COLOR` is unset; JSON lines carry the
//! same fields as text lines (the event's fields flattened next to `message`, the
//! spans it happened in, target, level and timestamp).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Without `RUST_LOG`: hickory logs every request at INFO and hyper/rustls are
/// chatty on hostile input, none of which an operator asked for. kube's HTTP layer
/// logs every failed request at ERROR (one line per retry of every watch while the
/// API server is away); the watches, the writers and the election say it once, with
/// the object and the backoff, so that layer is off.
pub const DEFAULT_FILTER: &str = "info,hickory_server=warn,hickory_proto=warn,hickory_net=warn,hyper=warn,hyper_util=warn,rustls=warn,kube_client::client::builder=off";

/// Whether text logs get ANSI colours (<https://no-color.org>: a non-empty `NO_COLOR` turns them off).
pub fn colours(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let ansi = colours(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colours(true, None));
        assert!(colours(true, Some(OsStr::new(""))), "an empty NO_COLOR does not count");
        assert!(!colours(true, Some(OsStr::new("1"))));
        assert!(!colours(false, None));
    }

    #[test]
    fn the_default_filter_parses() {
        EnvFilter::try_new(DEFAULT_FILTER).unwrap();
    }
}
