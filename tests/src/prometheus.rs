//! Envoy's `/stats/prometheus` output, parsed: how the tests read the
//! filter's labelled metrics the way a Prometheus server would.

use std::collections::BTreeMap;

/// One series: metric name and labels.
pub type Series = (String, BTreeMap<String, String>);

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Samples(pub BTreeMap<Series, f64>);

/// Parses the text exposition format (the subset Envoy writes: no
/// escaped quotes or commas inside label values).
pub fn parse(text: &str) -> Samples {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.split_once("=\"")?;
                Some((k.to_owned(), v.trim_end_matches('"').to_owned()))
            })
            .collect();
        out.insert((name.to_owned(), labels), value);
    }
    Samples(out)
}

/// Scrapes an Envoy admin address (`127.0.0.1:PORT`).
pub fn scrape(admin: &str) -> Result<Samples, ureq::Error> {
    let text = crate::http::get_text(&format!("http://{admin}/stats/prometheus"))?;
    Ok(parse(&text))
}

impl Samples {
    /// The value of the one series with exactly these labels.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.0.get(&(name.to_owned(), labels)).copied()
    }

    /// The sum over every series of `name` that has these labels (and
    /// any others), as PromQL `sum(name{labels})`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_and_labels_are_read_as_prometheus_would() {
        let s = parse(
            "# TYPE mcp_decisions_total counter\n\
             mcp_decisions_total{outcome=\"deny\",reason=\"missing_token\"} 2\n\
             mcp_decisions_total{outcome=\"allow\",reason=\"rule_allow\"} 1\n\
             mcp_pii_blocked_total 0\n",
        );
        let deny = [("outcome", "deny"), ("reason", "missing_token")];
        assert_eq!(s.get("mcp_decisions_total", &deny), Some(2.0));
        assert_eq!(s.get("mcp_decisions_total", &[("outcome", "deny")]), None);
        assert_eq!(s.sum("mcp_decisions_total", &[]), 3.0);
        assert_eq!(s.get("mcp_pii_blocked_total", &[]), Some(0.0));
    }
}
