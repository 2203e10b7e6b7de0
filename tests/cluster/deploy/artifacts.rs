//! The README's flag table against `serve --help`, and the Dockerfile against the
//! Deployment.

use super::*;

/// `failover-dns serve --help`, as an unconfigured environment shows it.
fn serve_help() -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_failover-dns"));
    command.args(["serve", "--help"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FAILOVER_DNS_") {
            command.env_remove(name);
        }
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "serve --help: {}", text(&out.stderr));
    text(&out.stdout)
}

/// flag → (environment variable, default), "" for none.
type Flags = BTreeMap<String, (String, String)>;

fn help_flags(help: &str) -> Flags {
    let mut flags = Flags::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        let line = line.trim();
        if let Some(flag) = line.strip_prefix("-h, ").unwrap_or(line).strip_prefix("--") {
            let name = format!("--{}", flag.split_whitespace().next().unwrap());
            current = (name != "--help").then(|| name.clone());
            if let Some(name) = &current {
                flags.insert(name.clone(), (String::new(), String::new()));
            }
        } else if let Some(flag) = &current {
            let entry = flags.get_mut(flag).unwrap();
            if let Some(env) = line.strip_prefix("[env: ") {
                entry.0 = env.split(['=', ']']).next().unwrap().to_string();
            } else if let Some(default) = line.strip_prefix("[default: ") {
                entry.1 = default.strip_suffix(']').unwrap().to_string();
            }
        }
    }
    flags
}

/// The README's table under "### Every `serve` flag": | `--flag ARG` | `default` or – | Helm value | `ENV` |.
fn readme_flags(readme: &str) -> Flags {
    let start = readme
        .find("### Every `serve` flag")
        .expect("the README has a section \"### Every `serve` flag\"");
    let mut flags = Flags::new();
    let rows = readme[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    for row in rows.skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "README flag table: 4 cells expected in {row:?}");
        let unquote =
            |c: &str| if c == "–" { String::new() } else { c.trim_matches('`').to_string() };
        let flag = cells[0].trim_matches('`').split_whitespace().next().unwrap_or("").to_string();
        assert!(flag.starts_with("--"), "README flag table: no --flag in {row:?}");
        assert!(
            !cells[2].is_empty(),
            "README flag table: {flag} has no Helm value (write \"via `extraArgs`\")"
        );
        flags.insert(flag, (unquote(cells[3]), unquote(cells[1])));
    }
    flags
}

#[test]
fn the_readme_flag_table_matches_serve_help() {
    let help = help_flags(&serve_help());
    assert!(
        help.contains_key("--zone") && help.contains_key("--log-format"),
        "parsed serve --help: {help:?}"
    );
    let readme = readme_flags(&std::fs::read_to_string(repo().join("README.md")).unwrap());
    let show = |(env, default): &(String, String)| {
        format!(
            "env `{env}`, default {}",
            if default.is_empty() { "–".to_string() } else { format!("`{default}`") }
        )
    };
    let mut problems = Vec::new();
    for (flag, expected) in &help {
        match readme.get(flag) {
            None => {
                problems.push(format!("{flag} is missing; serve --help says: {}", show(expected)))
            }
            Some(found) if found != expected => problems.push(format!(
                "{flag}: the table says {}, serve --help says {}",
                show(found),
                show(expected)
            )),
            Some(_) => {}
        }
    }
    for flag in readme.keys().filter(|f| !help.contains_key(*f)) {
        problems.push(format!("{flag} is in the table but not in serve --help"));
    }
    assert!(
        problems.is_empty(),
        "README.md, \"Every `serve` flag\" table:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_dockerfile_builds_what_the_deployment_runs() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let from: Vec<&str> = instructions.iter().filter_map(|l| l.strip_prefix("FROM ")).collect();
    assert_eq!(from.len(), 2, "multi-stage: {from:?}");
    assert!(
        from[0].starts_with("rust:1.95-bookworm "),
        "the official Rust image builds: {}",
        from[0]
    );
    assert!(dockerfile.contains("cargo build --release --locked"), "the build is locked");
    let user = instructions.iter().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric user (runAsNonRoot can check it)");
    assert_ne!(uid, 0);
    assert!(instructions.contains(&r#"ENTRYPOINT ["failover-dns"]"#));

    let k = objects(&kustomize(""));
    let pod = &find(&k, "Deployment", "failover-dns")["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], uid, "the pod runs as the image's user");
    let exposed: BTreeSet<String> = instructions
        .iter()
        .filter_map(|l| l.strip_prefix("EXPOSE "))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect();
    let ports: BTreeSet<String> = pod["containers"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!("{}/{}", p["containerPort"], p["protocol"].as_str().unwrap().to_lowercase())
        })
        .collect();
    assert_eq!(exposed, ports, "EXPOSE matches the container's ports");
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim_end_matches('/') == "target")
            && ignore.lines().any(|l| l.trim_end_matches('/') == ".git")
    );
}
