//! Trims a parsed bundle's rules to the memory they need.
//!
//! A JSON array is read without knowing its length, so every list grows by
//! doubling: a one-element list holds room for four, and 10,000 rules room
//! for 16,384. A policy lives as long as its bundle is active, in every
//! worker's VM, so the slack is given back once at compile time.

use crate::bundle::{ClaimTest, Conditions, Rule};

/// Gives back the spare capacity of the rule list and of every list and
/// string inside it.
pub fn shrink_rules(rules: &mut Vec<Rule>) {
    rules.shrink_to_fit();
    for rule in rules.iter_mut() {
        rule.id.shrink_to_fit();
        rule.description.shrink_to_fit();
        shrink_conditions(&mut rule.when);
    }
}

fn shrink_strings(list: &mut Vec<String>) {
    list.shrink_to_fit();
    list.iter_mut().for_each(String::shrink_to_fit);
}

fn shrink_conditions(when: &mut Conditions) {
    shrink_strings(&mut when.methods);
    shrink_strings(&mut when.hosts);
    shrink_strings(&mut when.models);
    shrink_strings(&mut when.peers);
    when.headers.shrink_to_fit();
    when.relations.shrink_to_fit();
    when.claims.shrink_to_fit();
    for claim in &mut when.claims {
        claim.claim.shrink_to_fit();
        match &mut claim.test {
            ClaimTest::OneOf(values) => values.shrink_to_fit(),
            ClaimTest::ContainsAny(words) | ClaimTest::ContainsAll(words) => shrink_strings(words),
            _ => {}
        }
    }
    if let Some(mcp) = &mut when.mcp {
        shrink_strings(&mut mcp.methods);
        shrink_strings(&mut mcp.tools);
        shrink_strings(&mut mcp.resources);
        shrink_strings(&mut mcp.prompts);
        shrink_strings(&mut mcp.resource_templates);
        mcp.arguments.shrink_to_fit();
    }
    if let Some(time) = &mut when.time {
        time.days.shrink_to_fit();
    }
}
