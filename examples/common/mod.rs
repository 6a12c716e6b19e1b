//! Shared by the lecture examples: a small option parser and PNG line charts.
//!
//! Included with `#[path = "common/mod.rs"] mod common;` (a folder without `main.rs` is not an
//! example of its own). Not every example uses every function.
#![allow(dead_code)]

pub mod plot;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

/// `--name value` options, checked against the names an example accepts.
pub struct Args {
    example: &'static str,
    values: HashMap<String, String>,
}

impl Args {
    /// Parses the command line; `known` lists `(name, help)` of the accepted options (`--out`
    /// and `--help` are always accepted). Exits with a message on a malformed command line.
    pub fn parse(example: &'static str, known: &[(&str, &str)]) -> Args {
        let usage = || {
            let w = known.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(3);
            let mut s = format!("usage: cargo run --release --example {example} -- [options]\n");
            s.push_str(&format!(
                "  --{:<w$}  where files go (default runs/{example})\n",
                "out"
            ));
            for (name, help) in known {
                s.push_str(&format!("  --{name:<w$}  {help}\n"));
            }
            s
        };
        let mut values = HashMap::new();
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            if a == "--help" || a == "-h" {
                print!("{}", usage());
                std::process::exit(0);
            }
            let name = match a.strip_prefix("--") {
                Some(n) if n == "out" || known.iter().any(|(k, _)| *k == n) => n.to_string(),
                _ => {
                    eprint!("unknown argument '{a}'\n{}", usage());
                    std::process::exit(2);
                }
            };
            let Some(v) = it.next() else {
                eprint!("--{name} needs a value\n{}", usage());
                std::process::exit(2);
            };
            values.insert(name, v);
        }
        Args { example, values }
    }

    /// The option's value, or `default` when absent. Exits if it does not parse.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.values.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("--{name}: cannot read '{v}'");
                std::process::exit(2);
            }),
        }
    }

    /// A comma-separated list, or `default` when absent.
    pub fn list<T: FromStr>(&self, name: &str, default: Vec<T>) -> Vec<T> {
        match self.values.get(name) {
            None => default,
            Some(v) => v
                .split(',')
                .map(|s| {
                    s.trim().parse().unwrap_or_else(|_| {
                        eprintln!("--{name}: cannot read '{s}' in '{v}'");
                        std::process::exit(2);
                    })
                })
                .collect(),
        }
    }

    /// The output folder (`--out`, default `runs/<example>`), created.
    pub fn out_dir(&self) -> PathBuf {
        let dir = self
            .values
            .get("out")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("runs").join(self.example));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create {}: {e}", dir.display());
            std::process::exit(1);
        }
        dir
    }
}
