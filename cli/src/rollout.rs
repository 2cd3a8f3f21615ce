//! Reading the control service's sync table (`GET /v1/status`): the text
//! rendering of `mcp-guard status --server URL`, and `push --wait-rollout`,
//! which polls the table until every live proxy of the bundle enforces the
//! pushed version, one refuses it, or time runs out.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often `--wait-rollout` asks for the table.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// Default `--rollout-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The table as aligned text columns, one line per proxy.
pub fn render(table: &Value) -> String {
    let header = [
        "BUNDLE",
        "INSTANCE",
        "POD",
        "ACTIVE",
        "LATEST",
        "STATE",
        "LAST-ERROR",
        "SEEN",
    ];
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => crate::output::cell(s),
        other => crate::output::cell(&other.to_string()),
    };
    let mut lines: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for row in rows(table) {
        let state = match (text(&row["state"]).as_str(), &row["rejected"]) {
            ("rejected", r) => {
                format!("rejected v{} ({})", text(&r["version"]), text(&r["reason"]))
            }
            (state, _) => state.to_owned(),
        };
        lines.push([
            text(&row["bundle"]),
            text(&row["instance"]),
            text(&row["pod"]),
            text(&row["active"]),
            text(&row["latest"]),
            state,
            text(&row["last_error"]),
            format!("{}s ago", text(&row["age_secs"])),
        ]);
    }
    let mut widths = [0usize; 8];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut row = String::new();
        for (cell, w) in line.iter().zip(widths) {
            let _ = write!(row, "{cell:<w$}  ");
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    if lines.len() == 1 {
        out.push_str("(no proxy has polled this service yet)\n");
    }
    out
}

fn rows(table: &Value) -> impl Iterator<Item = &Value> {
    table["instances"].as_array().into_iter().flatten()
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every live proxy enforces the version (or a newer one): how many.
    Done(usize),
    /// Live proxies refused it: `instance (code)` each.
    Rejected(Vec<String>),
    /// Live proxies still behind: `instance (state, active vN)` each.
    Waiting(Vec<String>),
    /// No live proxy subscribes to the bundle: nothing enforces it.
    NoLive,
}

/// Judges the table for `bundle` at `pushed`.
pub fn judge(table: &Value, bundle: &str, pushed: u64) -> Verdict {
    let live: Vec<&Value> = rows(table)
        .filter(|r| r["bundle"] == bundle && r["state"] != "stale")
        .collect();
    if live.is_empty() {
        return Verdict::NoLive;
    }
    // Every string here comes from the service: escaped before it is printed.
    let shown = |v: &Value| crate::output::cell(v.as_str().unwrap_or("?"));
    let name = |r: &Value| shown(&r["instance"]);
    let refused: Vec<String> = live
        .iter()
        .filter(|r| r["state"] == "rejected")
        .filter(|r| match r["rejected"]["version"].as_u64() {
            Some(v) => v == pushed,
            None => r["latest"].as_u64() == Some(pushed),
        })
        .map(|r| format!("{} ({})", name(r), shown(&r["rejected"]["reason"])))
        .collect();
    if !refused.is_empty() {
        return Verdict::Rejected(refused);
    }
    let behind: Vec<String> = live
        .iter()
        .filter(|r| r["active"].as_u64().is_none_or(|a| a < pushed))
        .map(|r| {
            let active = r["active"]
                .as_u64()
                .map_or_else(|| "none".to_owned(), |a| format!("v{a}"));
            format!("{} ({}, active {active})", name(r), shown(&r["state"]))
        })
        .collect();
    if behind.is_empty() {
        Verdict::Done(live.len())
    } else {
        Verdict::Waiting(behind)
    }
}

/// Polls the table with `fetch` until `judge` settles or `timeout` passes.
/// `Ok` is the line to print; `Err` says why the rollout did not complete.
pub fn wait(
    mut fetch: impl FnMut() -> Result<Value, String>,
    bundle: &str,
    pushed: u64,
    timeout: Duration,
) -> Result<String, String> {
    let started = Instant::now();
    let mut first = true;
    loop {
        let verdict = judge(&fetch()?, bundle, pushed);
        let took = started.elapsed().as_secs_f64();
        match verdict {
            Verdict::Done(n) => {
                return Ok(format!(
                    "rolled out {bundle} v{pushed}: {n} live proxy(ies) enforce it after {took:.1}s"
                ))
            }
            Verdict::Rejected(who) => {
                return Err(format!(
                "{bundle} v{pushed} was rejected by {}; they keep enforcing their active version",
                who.join(", ")
            ))
            }
            // Proxies that long-poll are live before the push: none at the
            // first look means nothing enforces the bundle.
            Verdict::NoLive if first => {
                return Err(format!(
                    "no live proxy polls {bundle}: nothing enforces v{pushed}"
                ))
            }
            Verdict::NoLive | Verdict::Waiting(_) if started.elapsed() >= timeout => {
                let who = match verdict {
                    Verdict::Waiting(who) => who.join(", "),
                    _ => "every proxy went stale".to_owned(),
                };
                return Err(format!(
                    "timed out after {took:.1}s waiting for {bundle} v{pushed}; behind: {who}"
                ));
            }
            Verdict::NoLive | Verdict::Waiting(_) => {}
        }
        first = false;
        std::thread::sleep(POLL_EVERY.min(timeout.saturating_sub(started.elapsed())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(instance: &str, active: Option<u64>, state: &str) -> Value {
        json!({"bundle": "demo", "instance": instance, "pod": null, "active": active,
               "latest": 3, "state": state, "rejected": null, "last_error": null, "age_secs": 2})
    }

    fn table(rows: Vec<Value>) -> Value {
        json!({ "instances": rows })
    }

    #[test]
    fn server_strings_are_escaped_in_the_table_and_verdicts() {
        let mut evil = row("i\u{1b}[2J", Some(2), "behind");
        evil["pod"] = json!("p\nfake-row");
        evil["last_error"] = json!("e\u{202e}");
        let shown = render(&table(vec![evil.clone()]));
        assert!(
            !shown.chars().any(|c| c != '\n' && crate::output::hidden(c)),
            "{shown:?}"
        );
        assert_eq!(shown.lines().count(), 2, "{shown}");
        match judge(&table(vec![evil]), "demo", 3) {
            Verdict::Waiting(who) => assert_eq!(who, vec!["i\\u001b[2J (behind, active v2)"]),
            other => panic!("{other:?}"),
        }
        let mut refuser = row("r", Some(2), "rejected");
        refuser["rejected"] = json!({"version": 3, "reason": "bad\u{1b}[0m"});
        assert_eq!(
            judge(&table(vec![refuser]), "demo", 3),
            Verdict::Rejected(vec!["r (bad\\u001b[0m)".into()])
        );
    }

    #[test]
    fn judges_rollouts() {
        let done = table(vec![
            row("a", Some(3), "synced"),
            row("gone", Some(1), "stale"),
            json!({"bundle": "other", "instance": "x", "active": 1, "state": "behind"}),
        ]);
        assert_eq!(judge(&done, "demo", 3), Verdict::Done(1));
        let waiting = table(vec![
            row("a", Some(3), "synced"),
            row("b", Some(2), "behind"),
        ]);
        assert_eq!(
            judge(&waiting, "demo", 3),
            Verdict::Waiting(vec!["b (behind, active v2)".into()])
        );
        let mut refuser = row("r", Some(2), "rejected");
        refuser["rejected"] = json!({"version": 3, "reason": "untrusted_key"});
        let rejected = table(vec![row("b", None, "behind"), refuser.clone()]);
        assert_eq!(
            judge(&rejected, "demo", 3),
            Verdict::Rejected(vec!["r (untrusted_key)".into()])
        );
        // A refusal of an older version is not a refusal of this one.
        refuser["rejected"]["version"] = json!(2);
        assert!(matches!(
            judge(&table(vec![refuser]), "demo", 3),
            Verdict::Waiting(_)
        ));
        assert_eq!(
            judge(&table(vec![row("gone", Some(3), "stale")]), "demo", 3),
            Verdict::NoLive
        );
        assert_eq!(judge(&json!({}), "demo", 3), Verdict::NoLive);
    }

    #[test]
    fn waits_until_settled() {
        let mut calls = 0;
        let result = wait(
            || {
                calls += 1;
                let active = if calls < 3 { 2 } else { 3 };
                Ok(table(vec![row("a", Some(active), "behind")]))
            },
            "demo",
            3,
            Duration::from_secs(10),
        );
        assert!(result.is_ok_and(|line| line.contains("1 live")));
        assert_eq!(calls, 3);
        let stuck = wait(
            || Ok(table(vec![row("b", Some(2), "behind")])),
            "demo",
            3,
            Duration::from_millis(50),
        );
        assert!(stuck.is_err_and(|e| e.contains("timed out") && e.contains("b (behind")));
        let none = wait(|| Ok(table(vec![])), "demo", 3, Duration::from_secs(10));
        assert!(none.is_err_and(|e| e.contains("no live proxy")));
    }

    #[test]
    fn renders_columns() {
        let mut refuser = row("r", Some(2), "rejected");
        refuser["rejected"] = json!({"version": 3, "reason": "untrusted_key"});
        refuser["last_error"] = json!("untrusted_key");
        let text = render(&table(vec![row("a", Some(3), "synced"), refuser]));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("BUNDLE  INSTANCE  POD"), "{text}");
        assert!(lines[2].contains("rejected v3 (untrusted_key)"), "{text}");
        assert!(
            lines[1].contains("synced") && lines[1].ends_with("2s ago"),
            "{text}"
        );
        assert!(render(&table(vec![])).contains("no proxy"));
    }
}
