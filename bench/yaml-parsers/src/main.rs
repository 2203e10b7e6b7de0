//! Time per document for the shape of the scale benchmark's manifests (one Simple A
//! record per document, as `bench/scale.py` writes them), parsed one document at a
//! time as the server does, by each deserializer, on one thread.
use serde::Deserialize;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Meta,
    spec: Spec,
}

#[derive(Deserialize)]
struct Meta {
    name: String,
    #[allow(dead_code)]
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct Spec {
    name: String,
    #[serde(rename = "type")]
    #[allow(dead_code)]
    record_type: String,
    values: Vec<String>,
}

impl Doc {
    /// Reads the parsed values, so that no parse is optimized away.
    fn checksum(&self) -> usize {
        self.metadata.name.len() + self.spec.name.len() + self.spec.values.len()
    }
}

/// The server's budgets (src/source/files.rs, `yaml_options`).
fn saphyr_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 32,
            flow_nesting_limit: 32,
            max_aliases: 1000,
            max_anchors: 1000,
            max_nodes: 100_000,
            max_events: 200_000,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: 10_000 },
        with_snippet: false,
    }
}

fn time(docs: &[String], parse: impl Fn(&str) -> Doc) -> Duration {
    let started = Instant::now();
    let checksum: usize = docs.iter().map(|d| parse(d).checksum()).sum();
    std::hint::black_box(checksum);
    started.elapsed() / docs.len() as u32
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100_000, |a| a.parse().expect("DOCUMENTS: a number"));
    let docs: Vec<String> = (0..n)
        .map(|i| {
            let ip = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            format!(
                "apiVersion: failoverdns.io/v1alpha1\nkind: FailoverRecord\nmetadata: {{name: r{i}, namespace: default}}\nspec: {{name: h{i}.big.test, type: A, values: [\"{ip}\"]}}\n"
            )
        })
        .collect();
    println!("{n} documents, µs per document (best of 3 rounds)");
    let parsers: [(&str, &dyn Fn(&str) -> Doc); 3] = [
        ("serde-saphyr (server's budgets)", &|d| serde_saphyr::from_str_with_options(d, saphyr_options()).unwrap()),
        ("serde_norway", &|d| serde_norway::from_str(d).unwrap()),
        ("serde_yaml_ng", &|d| serde_yaml_ng::from_str(d).unwrap()),
    ];
    for (name, parse) in parsers {
        let best = (0..3).map(|_| time(&docs, parse)).min().unwrap();
        println!("{name:32} {:6.2}", best.as_secs_f64() * 1e6);
    }
}
