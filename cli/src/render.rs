//! Human-readable rendering of an `explain` report: the decision first,
//! then every rule in evaluation order with each condition's verdict and
//! what the request actually had.

use std::fmt::Write as _;

use mcp_guard_engine::policy::RuleExplanation;
use mcp_guard_engine::{Decision, DryRunOutcome, Effect, Reason};

use crate::explain::{CallExplanation, CallInfo, Report};

const HELD: &str = "✓";
const FAILED: &str = "✗";

fn mark(ok: bool) -> &'static str {
    if ok {
        HELD
    } else {
        FAILED
    }
}

fn outcome_label(effect: Effect, rule: Option<&str>, reason: Reason) -> String {
    let effect = effect.as_str().to_ascii_uppercase();
    match (rule, reason) {
        (Some(rule), Reason::RuleAllow | Reason::RuleDeny) => format!("{effect} by rule {rule}"),
        _ => format!("{effect} ({})", reason.as_str()),
    }
}

/// `ALLOW by rule X`, `DENY (default_deny)`, `DENY (invalid_token: expired)`.
pub fn decision_label(decision: &Decision) -> String {
    let label = outcome_label(
        decision.effect,
        decision.rule_id.as_deref(),
        decision.reason,
    );
    match decision.detail {
        Some(detail) => format!("{}: {detail})", label.trim_end_matches(')')),
        None => label,
    }
}

fn dry_run_label(outcome: &DryRunOutcome) -> String {
    outcome_label(outcome.effect, outcome.rule_id.as_deref(), outcome.reason)
}

fn call_label(call: &CallInfo) -> String {
    let mut label = call.method.clone();
    if let Some(target) = &call.target {
        let _ = write!(label, " {target}");
    }
    if let Some(id) = &call.id {
        let _ = write!(label, " (id {id})");
    }
    label
}

fn write_rule(out: &mut String, indent: &str, rule: &RuleExplanation, decision: &Decision) {
    let _ = write!(
        out,
        "{indent}{} {} ({})",
        mark(rule.matched),
        rule.id,
        match rule.effect {
            mcp_guard_engine::bundle::RuleEffect::Allow => "allow",
            mcp_guard_engine::bundle::RuleEffect::Deny => "deny",
        }
    );
    if rule.dry_run {
        out.push_str(" [dry-run]");
    }
    if decision.rule_id.as_deref() == Some(rule.id.as_str()) {
        out.push_str("  <- decides");
    } else if decision.dry_run.as_ref().and_then(|d| d.rule_id.as_deref()) == Some(rule.id.as_str())
    {
        out.push_str("  <- would decide (dry run)");
    }
    out.push('\n');
    if rule.conditions.is_empty() {
        let _ = writeln!(out, "{indent}    (no conditions: matches every request)");
    }
    for c in &rule.conditions {
        let _ = writeln!(
            out,
            "{indent}    {} {}  (actual: {})",
            mark(c.held),
            c.condition,
            c.actual
        );
    }
}

fn write_explanation(out: &mut String, indent: &str, e: &CallExplanation) {
    if e.explanation.rules.is_empty() {
        let _ = writeln!(
            out,
            "{indent}(the bundle has no rules: everything is denied)"
        );
    }
    for rule in &e.explanation.rules {
        write_rule(out, indent, rule, &e.explanation.decision);
    }
}

/// Renders a report as text.
pub fn explain_text(report: &Report) -> String {
    // Rule ids, claims, tool names and paths come from the bundle and the
    // request being explained: every line is escaped as a whole (only the
    // line breaks written here stay), so none can drive the terminal.
    escape_lines(&explain_lines(report))
}

/// `text` with [`crate::output::hidden`] characters escaped in each line.
fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(crate::output::cell)
        .collect::<Vec<_>>()
        .join("\n")
}

fn explain_lines(report: &Report) -> String {
    let mut out = String::new();
    let decision = &report.decision;
    let _ = write!(out, "{}", decision_label(decision));
    if report.request.calls.len() > 1 {
        let _ = write!(
            out,
            "  (combined decision of {} MCP calls)",
            report.request.calls.len()
        );
    }
    out.push('\n');
    if let Some(dry) = &decision.dry_run {
        let _ = writeln!(out, "dry run:  would be {} if enforced", dry_run_label(dry));
    }
    if let Some(warning) = report.identity.warning {
        let _ = writeln!(out, "WARNING:  {warning}");
    }
    let b = &report.bundle;
    let _ = writeln!(
        out,
        "bundle:   {} v{} ({}){}",
        b.name,
        b.version,
        b.file,
        if b.dry_run { " [dry-run bundle]" } else { "" }
    );
    let _ = writeln!(
        out,
        "caller:   {} ({})",
        report.identity.subject.as_deref().unwrap_or("(no subject)"),
        report.identity.source.replace('_', " ")
    );
    let r = &report.request;
    let _ = write!(out, "request:  {} {}", r.method, r.path);
    if !r.host.is_empty() {
        let _ = write!(out, "  host={}", r.host);
    }
    if let Some(model) = &r.model {
        let _ = write!(out, "  model={model}");
    }
    let _ = writeln!(out, "  at {}", r.time);
    for note in &report.notes {
        let _ = writeln!(out, "note:     {note}");
    }
    match report.explanations.as_slice() {
        [] => {}
        [single] if single.call.is_none() => {
            out.push_str("\nrules in evaluation order (deny rules first):\n");
            write_explanation(&mut out, "", single);
        }
        calls => {
            let total = calls.len();
            for (i, e) in calls.iter().enumerate() {
                let label = e.call.as_ref().map_or_else(String::new, call_label);
                let _ = writeln!(
                    out,
                    "\ncall {}/{total}: {label} -> {}",
                    i + 1,
                    decision_label(&e.explanation.decision)
                );
                write_explanation(&mut out, "  ", e);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_naturally() {
        let allow = Decision {
            effect: Effect::Allow,
            rule_id: Some("users".into()),
            reason: Reason::RuleAllow,
            detail: None,
            dry_run: None,
        };
        assert_eq!(decision_label(&allow), "ALLOW by rule users");
        assert_eq!(
            decision_label(&Decision::deny(Reason::DefaultDeny)),
            "DENY (default_deny)"
        );
        assert_eq!(
            decision_label(&Decision::deny(Reason::InvalidToken).with_detail("expired")),
            "DENY (invalid_token: expired)"
        );
    }
}

#[cfg(test)]
mod escape_tests {
    #[test]
    fn lines_keep_their_breaks_and_lose_their_escapes() {
        let text = super::escape_lines("ALLOW by rule r\u{1b}[2J\n  tool t\u{202e}x\r\n");
        assert_eq!(text, "ALLOW by rule r\\u001b[2J\n  tool t\\u202ex\\u000d\n");
    }
}
